"""`cifarb eval` on a tiny synthetic CIFAR-10.1, and the CLI's rules for --out, --json, specs and flags."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cifarb.cli import main
from cifarb.metrics import validate_result
from cifarb.models import build_model
from cifarb.models.zoo import resolve_model
from cifarb.runs import RunDir

N = 50


def _images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8).repeat(8, axis=1).repeat(8, axis=2)


@pytest.fixture(scope="module")
def root_10_1(tmp_path_factory):
    """<root>/CIFAR-10.1/ v6 files holding N synthetic images (not the published ones: needs --trust-local)."""
    root = tmp_path_factory.mktemp("c101")
    folder = root / "CIFAR-10.1"
    folder.mkdir()
    np.save(folder / "cifar10.1_v6_data.npy", _images(N, 3))
    np.save(folder / "cifar10.1_v6_labels.npy", (np.arange(N) % 10).astype(np.int32))
    return root


def _argv(root, *extra: str) -> list[str]:
    return ["eval", "--dataset", "cifar10.1", "--root", str(root), "--trust-local", "--bootstrap", "50",
            "--no-progress", *extra]


def test_cifar10_1_accuracy_only(root_10_1, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(_argv(root_10_1, "--model", "resnet20", "--json", str(out), "--out", str(tmp_path / "run"))) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    validate_result(result)
    assert result["dataset"] == "cifar10.1" and result["n_images"] == N and result["n_official"] == 2000
    assert result["data_verified"] is False
    assert result["macro_std"] is None and result["subgroup_accuracy"] is None and result["cells"] == []
    net = resolve_model("resnet20").module.to(memory_format=torch.contiguous_format)
    x = _images(N, 3).astype(np.float32) / 255
    x = (x - np.array([0.485, 0.456, 0.406], dtype=np.float32)) / np.array([0.229, 0.224, 0.225], dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).argmax(1).numpy()
    assert result["accuracy"] == pytest.approx(float((ref == np.arange(N) % 10).mean()), abs=1e-12)
    frame = pd.read_parquet(RunDir(tmp_path / "run").predictions_path("cifar10.1"))
    np.testing.assert_array_equal(frame["prediction"], ref)
    assert frame["subgroup"].isna().all()
    assert "MacroStd is not defined" in printed
    assert main(_argv(root_10_1, "--model", "resnet20", "--cifar10-1-version", "v4")) == 1
    assert "cifarb data fetch cifar10.1" in capsys.readouterr().err


def test_without_out_nothing_but_json_is_written(root_10_1, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(_argv(root_10_1, "--model", "resnet20")) == 0
    assert "accuracy" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_out_rules(root_10_1, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("keep me")
    assert main(_argv(root_10_1, "--model", "resnet20", "--out", str(busy))) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in busy.iterdir()) == ["x.txt"]
    assert main(_argv(root_10_1, "--model", "resnet20", "--json", str(tmp_path))) == 2
    assert "is a directory" in capsys.readouterr().err
    # a failed evaluation leaves no run directory behind
    assert main(_argv(root_10_1, "--model", "resnet56", "--out", str(tmp_path / "never"))) == 1
    assert "cifarb data where resnet56" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_run_directory_model_can_be_evaluated_into_itself(root_10_1, tmp_path, capsys):
    run = RunDir(tmp_path / "trained").create()
    run.write_manifest({"config": {"arch": "resnet20", "dataset": "cifar10", "mean": [0.5] * 3, "std": [0.25] * 3}})
    torch.manual_seed(0)
    run.save_checkpoint({"model": build_model("resnet20").state_dict(), "epoch": 1})
    assert main(_argv(root_10_1, "--model", str(run.path), "--out", str(run.path))) == 0
    assert run.eval_datasets() == ["cifar10.1"]
    result = run.read_eval("cifar10.1")
    assert result["provenance"]["model_sha256"] == resolve_model(str(run.path)).sha256
    assert "kind" not in run.read_manifest()  # the training manifest is left as it was
    other = tmp_path / "other"
    assert main(_argv(root_10_1, "--model", "resnet20", "--out", str(other))) == 0
    assert main(_argv(root_10_1, "--model", "resnet20", "--out", str(other))) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_flag_errors(root_10_1, capsys):
    assert main(_argv(root_10_1, "--model", "resnet20", "--mean", "0.5,0.5,0.5")) == 2
    assert "--mean and --std together" in capsys.readouterr().err
    assert main(_argv(root_10_1, "--model", "resnet20", "--mean", "0.5,0.5")) == 2
    assert main(_argv(root_10_1, "--model", "resnet20", "--batch-size", "0")) == 2
    assert main(_argv(root_10_1, "--model", "resnet20", "--seed", "-1")) == 2
    assert main(_argv(root_10_1, "--model", "resnet20", "--subgroup-names", "a,b,c")) == 1
    assert "--subgroup-names needs 8" in capsys.readouterr().err
    assert main(_argv(root_10_1, "--model", "nosuchmodel")) == 1
    assert "neither a zoo name" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(_argv(root_10_1, "--model", "resnet20", "--device", "cuda")) == 1
        assert "no CUDA device" in capsys.readouterr().err
    assert main(_argv(root_10_1, "--model", "resnet20", "--corruptions", "fog")) == 2
    assert main(["eval", "--help"]) == 0
    assert "module:callable" in capsys.readouterr().out
