"""-C evaluation on tiny synthetic corruption folders (official layout, and a `make-c` local set)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from _reference import plain_macro_std
from cifarb.cli import main
from cifarb.data.cifar_b import load_cifar_b
from cifarb.metrics import validate_result
from cifarb.models.zoo import resolve_model
from cifarb.runs import RunDir

N = 60  # images per severity: a prefix of the official test set
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _clean_images(n: int) -> np.ndarray:
    rng = np.random.default_rng(42)
    coarse = rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
    return coarse.repeat(8, axis=1).repeat(8, axis=2)


def _corrupt(images: np.ndarray, name: str, severity: int) -> np.ndarray:
    x = images.astype(np.int16)
    if name == "brightness":
        x = x + 30 * severity
    else:  # gaussian_noise
        x = x + np.random.default_rng(severity).normal(0, 12 * severity, size=x.shape).round().astype(np.int16)
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def c_root(tmp_path_factory):
    """<root>/CIFAR-10-C/ with two corruptions x 5 severities of N images, in the official layout."""
    root = tmp_path_factory.mktemp("croot")
    folder = root / "CIFAR-10-C"
    folder.mkdir()
    clean = _clean_images(N)
    labels = load_cifar_b("cifar10").labels[:N]
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    for name in ("brightness", "gaussian_noise"):
        np.save(folder / f"{name}.npy", np.concatenate([_corrupt(clean, name, s) for s in range(1, 6)]))
    return root


def _reference_predictions(images: np.ndarray) -> np.ndarray:
    net = resolve_model("resnet20").module.to(memory_format=torch.contiguous_format)
    x = ((images.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).copy()
    with torch.no_grad():
        return net(torch.from_numpy(x)).argmax(1).numpy()


def test_every_pair_joined_with_subgroups_and_means(c_root, tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["eval", "--model", "resnet20", "--dataset", "cifar10-c", "--root", str(c_root), "--json", str(out),
            "--bootstrap", "50", "--no-progress"]
    assert main(argv) == 1  # local files need --trust-local
    assert "--trust-local" in capsys.readouterr().err
    assert main([*argv, "--trust-local", "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    validate_result(result)
    assert result["dataset"] == "cifar10-c" and result["data_verified"] is False
    assert result["n_images"] == N and result["n_official"] == 10_000
    assert set(result["corruptions"]) == {"brightness", "gaussian_noise"}

    labels = load_cifar_b("cifar10").labels[:N]
    groups = load_cifar_b("cifar10").subgroups[:N]
    clean = _clean_images(N)
    frame = pd.read_parquet(RunDir(tmp_path / "run").predictions_path("cifar10-c"))
    assert len(frame) == 2 * 5 * N
    assert {"index", "label", "prediction", "subgroup", "corruption", "severity"} <= set(frame.columns)
    accs, stds = {}, {}
    for name in ("brightness", "gaussian_noise"):
        assert list(result["corruptions"][name]) == ["1", "2", "3", "4", "5"]
        for s in range(1, 6):
            rows = frame[(frame["corruption"] == name) & (frame["severity"] == s)]
            pred = rows["prediction"].to_numpy()
            np.testing.assert_array_equal(rows["subgroup"], groups)
            np.testing.assert_array_equal(rows["label"], labels)
            np.testing.assert_array_equal(rows["index"], np.arange(N))
            pair = result["corruptions"][name][str(s)]
            accs[name, s] = float((pred == labels).mean())
            stds[name, s] = plain_macro_std(labels, pred, groups)
            assert pair["accuracy"] == pytest.approx(accs[name, s], abs=1e-12)
            assert pair["macro_std"] == pytest.approx(stds[name, s], abs=1e-12)
            assert sum(c["n"] for c in pair["cells"]) == N
    # spot-check that each pair's predictions come from that pair's images (predict() itself is
    # compared with a reference in test_eval_predict)
    for name, s in (("brightness", 1), ("gaussian_noise", 5)):
        rows = frame[(frame["corruption"] == name) & (frame["severity"] == s)]
        np.testing.assert_array_equal(rows["prediction"], _reference_predictions(_corrupt(clean, name, s)))
    # top level: unweighted means over the 10 pairs; by severity: over the 2 corruptions
    assert result["accuracy"] == pytest.approx(np.mean(list(accs.values())), abs=1e-12)
    assert result["macro_std"] == pytest.approx(np.mean(list(stds.values())), abs=1e-12)
    means = result["corruptions_mean"]
    assert means["paper18"] is None  # only 2 of the paper's 18 corruptions are present
    for s in range(1, 6):
        block = means["by_severity"][str(s)]
        assert block["accuracy"] == pytest.approx((accs["brightness", s] + accs["gaussian_noise", s]) / 2, abs=1e-12)
    assert accs["gaussian_noise", 5] < accs["gaussian_noise", 1]  # the corruption bites
    assert "MacroStd" in printed and "brightness" in printed and "gaussian_noise" in printed


def test_corruption_subset(c_root, tmp_path):
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "resnet20", "--dataset", "cifar10-c", "--root", str(c_root), "--trust-local",
                 "--corruptions", "brightness", "--json", str(out), "--bootstrap", "0", "--no-progress",
                 "--subgroup-names", "s0,s1,s2,s3,s4,s5,s6,s7"]) == 0
    result = json.loads(out.read_text())
    validate_result(result)
    assert list(result["corruptions"]) == ["brightness"] and result["ci95"] is None
    assert result["settings"]["subgroup_names"] == [f"s{i}" for i in range(8)]
    assert set(result["corruptions"]["brightness"]["3"]["subgroup_accuracy"]) <= {f"s{i}" for i in range(8)}


def test_generated_set_is_reported_as_local(shared_data, tmp_path):
    from cifarb.data.corruptions import make_c
    from cifarb.data.readers import load_cifar

    clean = load_cifar("cifar10", "test", root=shared_data, trust_local=True)
    clean.images, clean.labels, clean.indices = clean.images[:40], clean.labels[:40], clean.indices[:40]
    make_c(clean, tmp_path / "gen", dataset="cifar10", corruptions=["brightness"], severities=[2, 4],
           progress=False)
    out = tmp_path / "r.json"
    # a generated set is read without --trust-local; its data_verified follows its source's
    assert main(["eval", "--model", "resnet20", "--dataset", "cifar10-c", "--root", str(tmp_path / "gen"),
                 "--json", str(out), "--out", str(tmp_path / "run"), "--bootstrap", "20", "--no-progress"]) == 0
    result = json.loads(out.read_text())
    validate_result(result)
    assert result["dataset"] == "cifar10-c-local" and result["data_verified"] is False
    assert list(result["corruptions"]["brightness"]) == ["2", "4"] and result["n_images"] == 40
    assert RunDir(tmp_path / "run").eval_datasets() == ["cifar10-c-local"]
