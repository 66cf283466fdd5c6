"""Every augmentation (and compositions) runs through the training loop: one epoch, finite loss, logged spec."""

from __future__ import annotations

import json

import pytest
import torch

from cifarb.augment import available
from cifarb.train import TrainConfig
from cifarb.train.engine import run
from test_train_helpers import write_cifar10_root

SPECS = [a for a in available() if a != "flowaug"] + ["standard+mixup", "standard+cutmix", "cutout+standard"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_cifar10_root(tmp_path_factory.mktemp("data"), n_train=20, n_test=8)


def test_the_list_covers_the_contract_names():
    assert {"none", "standard", "cutout", "autoaugment", "randaugment", "trivialaugment", "augmix", "mixup",
            "cutmix"} <= set(SPECS)


@pytest.mark.parametrize("spec, jsd", [(s, True) for s in SPECS] + [("augmix", False)])
def test_augmentation_trains_one_epoch(root, tmp_path, spec, jsd):
    out = tmp_path / "run"
    cfg = TrainConfig(dataset="cifar10", arch="resnet20", aug=spec, epochs=1, batch_size=8, root=str(root),
                      trust_local=True, out=str(out), eval=False, progress=False, workers=0, augmix_jsd=jsd)
    result = run(cfg)
    (line,) = result.history
    assert line["train_loss"] > 0 and 0 <= line["train_accuracy"] <= 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["augment"]["spec"] == spec
    if spec == "augmix":
        # JSD needs the clean view plus two augmented views per image
        assert manifest["augment"]["views"] == (3 if jsd else 1)


def test_flowaug_gets_the_training_set_and_trains(root, tmp_path):
    from cifarb.cli import main
    from cifarb.flows.checkpoint import FORMAT, FORMAT_VERSION
    from cifarb.flows.configs import preset
    from cifarb.flows.model import GlobalLocalFlow

    # a tiny untrained flow in the checkpoint format of `cifarb flow train`
    cfg = preset("tiny").replace(hidden=8, steps=1, z_dim=4, enc_channels=4, seed=0)
    torch.manual_seed(0)
    flow = GlobalLocalFlow(cfg)
    flow.initialize(torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8))
    ckpt = tmp_path / "flow.pt"
    torch.save({"format": FORMAT, "version": FORMAT_VERSION, "config": cfg.to_dict(), "model": flow.state_dict(),
                "epoch": 1, "dataset": "cifar10"}, ckpt)
    out = tmp_path / "run"
    argv = ["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard+flowaug", "--flow", str(ckpt),
            "--flowaug-p", "1.0", "--flowaug-swap", "class", "--epochs", "1", "--batch-size", "8", "--root",
            str(root), "--trust-local", "--out", str(out), "--no-eval", "--no-progress"]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (piece,) = [p for p in manifest["augment"]["pieces"] if p["name"] == "flowaug"]
    assert piece["p"] == 1.0 and piece["swap"] == "class" and piece["flow_sha256"]
    assert manifest["config"]["flow"] == str(ckpt)
    # without --flow, the same command is refused before anything is written
    argv_no_flow = [a for a in argv if a not in ("--flow", str(ckpt))]
    argv_no_flow[argv_no_flow.index("--out") + 1] = str(tmp_path / "r2")
    assert main(argv_no_flow) == 2 and not (tmp_path / "r2").exists()


def test_per_sample_policies_run_in_process_on_cpu_unless_workers_are_asked_for(root, tmp_path):
    from cifarb.train.engine import plan

    def workers(**kw):
        cfg = TrainConfig(dataset="cifar10", arch="resnet20", aug="autoaugment", epochs=1, batch_size=8,
                          root=str(root), trust_local=True, out=str(tmp_path / "run"), eval=False,
                          progress=False, device="cpu", **kw)
        return plan(cfg).runtime.workers

    # on CPU the model's threads use every core; a worker process would compete with them
    assert workers() == 0
    assert workers(workers=2) == 2
