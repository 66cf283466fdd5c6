"""Every augmentation (and compositions) runs through the training loop: one epoch, finite loss, logged spec."""

from __future__ import annotations

import json

import pytest

from cifarb.augment import available
from cifarb.train import TrainConfig
from cifarb.train.engine import run
from test_train_helpers import write_cifar10_root

SPECS = [a for a in available() if a != "flowaug"] + ["standard+mixup", "standard+cutmix", "cutout+standard"]


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
