"""`cifarb train` run-directory contract: files and keys, --out/--resume rules, validation before writing, NaN stop."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarb.cli import main
from test_train_helpers import write_cifar10_root

EPOCH_KEYS = {"event", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "elapsed_s"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_cifar10_root(tmp_path_factory.mktemp("data"), n_train=40, n_test=24)


def base_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard", "--root", str(root),
        "--trust-local", "--batch-size", "16", "--out", str(out), "--no-progress", *extra,
    ]


def epoch_lines(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["event"] == "epoch"]


def test_run_directory_contract(root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()  # an existing empty directory is fine
    assert main(base_args(root, out, "--epochs", "2", "--lr", "0.05")) == 0
    assert capsys.readouterr().out.strip() == str(out)

    # manifest: full config actually used, seed, versions, input sha256s, git commit, host
    manifest = json.loads((out / "manifest.json").read_text())
    cfg = manifest["config"]
    assert (cfg["arch"], cfg["aug"], cfg["epochs"], cfg["batch_size"], cfg["lr"], cfg["seed"]) == (
        "resnet20", "standard", 2, 16, 0.05, 0)
    assert cfg["weight_decay"] == 1e-4 and manifest["hparams"]["momentum"] == 0.9  # the recipe's defaults
    assert manifest["seed"] == 0 and manifest["versions"]["torch"] == torch.__version__
    assert "git_commit" in manifest and manifest["host"]["hostname"]
    assert manifest["data_verified"] is False
    files = sorted((root / "cifar-10-batches-py").glob("*_batch*"))
    assert len(manifest["input_sha256"]) == 6
    for f in files:
        assert manifest["input_sha256"][str(f)] == hashlib.sha256(f.read_bytes()).hexdigest()

    # metrics.jsonl: exactly the contract keys, 1-based epochs, fractions, the rescaled step schedule
    lines = epoch_lines(out)
    assert [r["epoch"] for r in lines] == [1, 2]
    for r in lines:
        assert set(r) == EPOCH_KEYS
        assert 0 <= r["train_accuracy"] <= 1 and 0 <= r["test_accuracy"] <= 1
        assert all(math.isfinite(r[k]) for k in ("train_loss", "test_loss"))
    assert lines[0]["elapsed_s"] < lines[1]["elapsed_s"]
    # 2 steps/epoch (40 images, batch 16), 4 steps in all; milestones 0.5, 0.75 -> x0.1 from step 2 and
    # again from step 3 (0-based); the logged lr is that of each epoch's last step (steps 1 and 3)
    assert lines[0]["lr"] == pytest.approx(0.05) and lines[1]["lr"] == pytest.approx(0.05 * 0.1 * 0.1)

    # the checkpoint holds the final model; an independent forward pass reproduces test_accuracy
    from cifarb.data.readers import load_cifar
    from cifarb.eval import predict
    from cifarb.models.zoo import resolve_model

    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and set(ckpt) >= {"model", "optimizer", "scheduler", "rng"}
    loaded = resolve_model(str(out))
    test = load_cifar("cifar10", "test", root=root, trust_local=True)
    pred, _ = predict(loaded.module, test.images, loaded.mean, loaded.std, batch_size=64, device="cpu")
    assert lines[-1]["test_accuracy"] == pytest.approx(float(np.mean(pred == test.labels)))

    # the final CIFAR-B evaluation
    from cifarb.metrics import validate_result

    result = json.loads((out / "eval" / "cifar10-b.json").read_text())
    validate_result(result)
    assert result["n_images"] == 24 and result["accuracy"] == pytest.approx(float(np.mean(pred == test.labels)))
    assert (out / "predictions" / "cifar10-b.parquet").exists()
    evals = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["event"] == "eval"]
    assert len(evals) == 1 and evals[0]["dataset"] == "cifar10-b"

    # resuming a finished, evaluated run changes nothing
    before = (out / "metrics.jsonl").read_text()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert (out / "metrics.jsonl").read_text() == before


def test_permutations_reach_the_final_evaluation(root, tmp_path, capsys):
    import pandas as pd

    from cifarb.metrics.core import subgroup_effect_p

    out = tmp_path / "run"
    assert main(base_args(root, out, "--epochs", "1", "--permutations", "-1")) == 2 and not out.exists()
    assert main(base_args(root, out, "--epochs", "1", "--permutations", "19")) == 0
    result = json.loads((out / "eval" / "cifar10-b.json").read_text())
    assert result["settings"]["permutations"] == 19
    assert json.loads((out / "manifest.json").read_text())["config"]["permutations"] == 19
    # the test the evaluation ran: 19 permutations with the run's seed, recomputed from its predictions
    frame = pd.read_parquet(out / "predictions" / "cifar10-b.parquet")
    sub = {n: i for i, n in enumerate(result["settings"]["subgroup_names"])}
    groups = frame["subgroup"].map(sub) if frame["subgroup"].dtype == object else frame["subgroup"]
    want = subgroup_effect_p(frame["label"], frame["prediction"], groups, n_classes=10, n_subgroups=8,
                             seed=0, permutations=19)
    assert want is not None and result["p_subgroup_effect"] == want and want in {i / 20 for i in range(1, 21)}
    # it decides the result, so a resume may not change it
    assert main(["train", "--out", str(out), "--resume", "--permutations", "99", "--no-progress"]) == 2
    assert "--permutations" in capsys.readouterr().err
    # a run made before the field existed records none: the given value is taken, not dropped
    from cifarb.train.config import TrainConfig, check_resume_compatible

    saved = TrainConfig(dataset="cifar10", arch="resnet20", aug="standard").to_dict()
    del saved["permutations"]
    cfg = TrainConfig(dataset="cifar10", arch="resnet20", aug="standard", permutations=19)
    assert check_resume_compatible(saved, cfg, {"permutations"}).permutations == 19


def test_default_out_and_python_api(root, tmp_path, monkeypatch):
    from cifarb.train import TrainConfig, train

    monkeypatch.chdir(tmp_path)
    path = train(TrainConfig(dataset="cifar10", arch="resnet20", aug="none", epochs=1, batch_size=16,
                             root=str(root), trust_local=True, eval=False, progress=False, seed=3))
    assert path.parent == Path("runs") and path.name.endswith("-resnet20-none-s3")
    assert (tmp_path / path / "checkpoints" / "last.pt").exists()
    assert len(epoch_lines(tmp_path / path)) == 1


def test_out_rules(root, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("x")
    assert main(base_args(root, busy, "--epochs", "1")) == 2
    assert "--resume" in capsys.readouterr().err
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(base_args(root, afile, "--epochs", "1")) == 2
    # --resume needs a run there
    assert main(base_args(root, tmp_path / "nothing", "--resume")) == 2
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize(
    "extra, status, message",
    [
        (["--epochs", "0"], 2, "positive"),
        (["--lr", "0"], 2, "positive"),
        (["--lr", "-0.1"], 2, "positive"),
        (["--batch-size", "0"], 2, "positive"),
        (["--batch-size", "64"], 2, "larger than the 40 training images"),
        (["--arch", "resnet7"], 2, "unknown"),
        (["--aug", "standard+warp"], 2, "warp"),
        (["--aug", "standard+"], 2, "malformed"),
        (["--flow", "flow.pt"], 2, "--flow"),
        (["--image-size", "64"], 2, "imagenet"),
        (["--hparam", "momentum=1.5"], 1, "momentum"),
        (["--hparam", "shedule=cosine"], 1, "shedule"),
        (["--device", "tpu"], 2, "device"),
    ],
)
def test_bad_arguments_leave_nothing(root, tmp_path, capsys, extra, status, message):
    out = tmp_path / "run"
    assert main(base_args(root, out, "--epochs", "1", *extra)) == status
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_or_untrusted_data_leaves_nothing(root, tmp_path, capsys):
    out = tmp_path / "run"
    args = base_args(tmp_path / "nodata", out, "--epochs", "1")
    assert main(args) == 1
    assert not out.exists()
    args = [a for a in base_args(root, out, "--epochs", "1") if a != "--trust-local"]
    assert main(args) == 1
    assert "--trust-local" in capsys.readouterr().err
    assert not out.exists()


def test_config_file_and_flag_precedence(root, tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(
        'dataset = "cifar10"\narch = "resnet20"\naug = "none"\nepochs = 1\nbatch-size = 8\n'
        f'root = "{root}"\ntrust_local = true\neval = false\n[hparams]\nmomentum = 0.5\nschedule = "cosine"\n'
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(toml), "--batch-size", "16", "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["batch_size"] == 16  # the flag wins over the file
    assert manifest["hparams"]["momentum"] == 0.5 and manifest["hparams"]["schedule"] == "cosine"
    assert manifest["runtime"]["steps_per_epoch"] == 2

    bad = tmp_path / "bad.toml"
    bad.write_text('arch = "resnet20"\nepoks = 3\n')
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r2")]) == 1
    assert "epoks" in capsys.readouterr().err and not (tmp_path / "r2").exists()

    # resuming with a different hyperparameter is refused, naming the flag
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.3"]) == 2
    assert "--lr" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_last_good_checkpoint(root, tmp_path, capsys, monkeypatch):
    from cifarb.augment.pipeline import AugmentPipeline

    real_loss = AugmentPipeline.loss
    calls = {"n": 0}

    def loss_going_nan(self, logits, targets):
        calls["n"] += 1
        value = real_loss(self, logits, targets)
        return value * float("nan") if calls["n"] > 2 else value  # epoch 1 = steps 1-2 is fine

    monkeypatch.setattr(AugmentPipeline, "loss", loss_going_nan)
    out = tmp_path / "run"
    assert main(base_args(root, out, "--epochs", "3", "--aug", "none")) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "NaN" in err and "epoch 2" in err and "last good checkpoint" in err
    assert "Traceback" not in err
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert [r["epoch"] for r in epoch_lines(out)] == [1]


def test_huge_lr_diverges_with_a_clear_message(root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(base_args(root, out, "--epochs", "2", "--lr", "1e30", "--aug", "none")) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "lower --lr" in err and "no checkpoint was written" in err
    assert not (out / "checkpoints" / "last.pt").exists()
    assert epoch_lines(out) == [] if (out / "metrics.jsonl").exists() else True


def test_imagenet_architecture_from_random_init_at_32px(root, tmp_path):
    from cifarb.models.zoo import resolve_model

    out = tmp_path / "run"
    argv = base_args(root, out, "--arch", "resnet18_imagenet", "--no-pretrained", "--image-size", "32",
                     "--epochs", "1", "--no-eval")
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["arch_options"] == {"image_size": 32, "pretrained": False}
    assert manifest["normalization"]["mean"] == [0.485, 0.456, 0.406]  # ImageNet statistics
    loaded = resolve_model(str(out))  # rebuilt from the manifest without any download
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    for key, value in loaded.module.state_dict().items():
        assert torch.equal(value, ckpt["model"][key]), key
    assert main(base_args(root, tmp_path / "r2", "--pretrained", "--epochs", "1")) == 2  # resnet20: no weights


def test_resume_repairs_a_log_line_lost_in_a_crash(root, tmp_path):
    out = tmp_path / "run"
    assert main(base_args(root, out, "--epochs", "2", "--aug", "none", "--no-eval")) == 0
    full = (out / "metrics.jsonl").read_text()
    # a crash between writing the checkpoint and appending its line loses the last line
    (out / "metrics.jsonl").write_text(full.splitlines(keepends=True)[0])
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert (out / "metrics.jsonl").read_text() == full


def test_a_manifest_that_cannot_be_written_leaves_no_run(root, tmp_path, capsys, monkeypatch):
    from cifarb.errors import CifarbError
    from cifarb.runs import RunDir

    def disk_full(self, manifest):
        raise CifarbError(f"no space left on the device while writing {self.manifest_path}")

    monkeypatch.setattr(RunDir, "write_manifest", disk_full)
    out = tmp_path / "run"
    assert main(base_args(root, out, "--epochs", "1")) == 1
    assert "no space left" in capsys.readouterr().err
    assert not out.exists()
