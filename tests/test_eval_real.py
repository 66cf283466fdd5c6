"""Real check: the bundled ResNet20 on the 1,017 real CIFAR-10 test images of ../shared/data (CIFAR10-B)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from _reference import plain_macro_std
from cifarb.cli import main
from cifarb.data.cifar_b import load_cifar_b
from cifarb.metrics import validate_result
from cifarb.models.zoo import ZOO, resolve_model
from cifarb.runs import RunDir


def _reference_predictions(shared_data, n: int) -> tuple[np.ndarray, np.ndarray]:
    """All labels, and ResNet20 predictions for the first `n` images, without cifarb's readers or predict()."""
    with open(shared_data / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    x = batch[b"data"][:n].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
    net = resolve_model("resnet20").module.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        pred = net(torch.from_numpy((x - mean) / std)).argmax(1).numpy()
    return np.array(batch[b"labels"]), pred


def test_resnet20_on_the_real_cifar10b_slice(shared_data, tmp_path, capsys):
    out_json = tmp_path / "out.json"
    run_dir = tmp_path / "run"
    argv = ["eval", "--model", "resnet20", "--dataset", "cifar10-b", "--root", str(shared_data), "--trust-local",
            "--json", str(out_json), "--bootstrap", "300", "--no-progress"]
    assert main([*argv, "--out", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    validate_result(result)
    assert result["dataset"] == "cifar10-b"
    assert result["n_images"] == 1017 and result["n_official"] == 10000
    assert result["data_verified"] is False
    assert 0.89 <= result["accuracy"] <= 0.95
    prov = result["provenance"]
    assert prov["model"] == "resnet20" and prov["model_sha256"] == ZOO["resnet20"].bundled_sha256
    assert list(prov["data_sha256"].values()) == [
        "98fbd9f1baeee32a3d27856d1aa409fe42e88742870fe236f584595900649b4b"]

    # independent computation: own reader, own normalisation (on a spot-check of 128 images; predict()
    # itself is compared with a reference in test_eval_predict), own MacroStd loop
    frame = pd.read_parquet(RunDir(run_dir).predictions_path("cifar10-b"))
    pred = frame["prediction"].to_numpy()
    labels, spot = _reference_predictions(shared_data, 128)
    np.testing.assert_array_equal(pred[:128], spot)
    groups = load_cifar_b("cifar10").subgroups[:1017]
    assert result["accuracy"] == pytest.approx(float((pred == labels).mean()), abs=1e-12)
    assert result["macro_std"] == pytest.approx(plain_macro_std(labels, pred, groups), abs=1e-12)
    assert sum(c["n"] for c in result["cells"]) == 1017

    # the printed table: subgroups, MacroStd with CI and noise floor, the worst cell
    assert "MacroStd" in printed and "noise floor" in printed and "worst cell" in printed
    assert "data NOT verified" in printed.splitlines()[0] and "model resnet20" in printed.splitlines()[0]
    assert f"{100 * result['macro_std']:.2f}" in printed
    for name in result["subgroup_accuracy"]:
        assert name in printed

    # the run directory: the same result, and predictions joined with the subgroups
    run = RunDir(run_dir)
    assert run.read_eval("cifar10-b") == result
    assert list(frame.columns) == ["index", "label", "prediction", "subgroup"]
    np.testing.assert_array_equal(frame["index"], np.arange(1017))
    np.testing.assert_array_equal(frame["label"], labels)
    np.testing.assert_array_equal(frame["subgroup"], groups)
    assert run.read_manifest()["config"]["model"] == "resnet20"
    assert run.read_metrics("eval")[0]["accuracy"] == result["accuracy"]


def test_unverified_slice_is_refused_without_trust_local(shared_data, tmp_path, capsys):
    assert main(["eval", "--model", "resnet20", "--dataset", "cifar10-b", "--root", str(shared_data),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    assert "--trust-local" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
