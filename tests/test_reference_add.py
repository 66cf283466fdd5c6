"""`cifarb reference --add`: subset re-scoring on exactly the same indices, intersections, ranks, the paired
comparison with the nearest reference model, result JSONs and run directories."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _reference import plain_accuracy, plain_macro_std
from cifarb.cli import main
from cifarb.data.cifar_b import load_cifar_b
from cifarb.errors import CifarbError
from cifarb.metrics import compute_metrics, paired_bootstrap
from cifarb.reference import load_reference
from cifarb.reference.score import AddedModel, score

FAST = ["--bootstrap", "0", "--analysis-bootstrap", "20"]


def _noisy(name: str, idx: np.ndarray, rate: float, seed: int) -> np.ndarray:
    p = load_reference().cifar10[name][idx].copy()
    flip = np.random.default_rng(seed).random(idx.size) < rate
    p[flip] = (p[flip] + 1) % 10
    return p


def _plain(labels, preds, subgroups):
    return plain_accuracy(labels, preds), plain_macro_std(labels, preds, subgroups)


def test_subset_rescores_every_reference_model_on_the_same_indices():
    idx = np.sort(np.random.default_rng(1).choice(10_000, size=1_500, replace=False))  # not a prefix
    mine = AddedModel("mine", idx, _noisy("nas", idx, 0.05, 0))
    table = score(added=[mine], bootstrap=0, analysis_bootstrap=0)
    assert (table["n_images"], table["indices"]) == (1_500, "subset")
    assert "re-scored on exactly these images" in table["notes"][0]
    b = load_cifar_b("cifar10")
    ref = load_reference()
    rows = {r["name"]: r for r in table["models"]}
    for name in ("resnet_basic_32", "shake_drop"):
        acc, ms = _plain(b.labels[idx].tolist(), ref.cifar10[name][idx].tolist(), b.subgroups[idx].tolist())
        assert abs(rows[name]["accuracy"] - acc) <= 1e-12 and abs(rows[name]["macro_std"] - ms) <= 1e-12
    for name in ref.names:
        direct = compute_metrics(b.labels[idx], ref.cifar10[name][idx], b.subgroups[idx], n_classes=10,
                                 n_subgroups=8, bootstrap=0)
        assert rows[name]["accuracy"] == direct.accuracy and rows[name]["macro_std"] == direct.macro_std
        assert rows[name]["macro_std_null"] == direct.macro_std_null
        # the CIFAR-10.1 keys are for the full sets whatever the CIFAR-10 indices
        assert rows[name]["cifar10_1_v6_accuracy"] == ref.cifar10_1_accuracy["v6"][name].accuracy
    acc, ms = _plain(b.labels[idx].tolist(), mine.predictions.tolist(), b.subgroups[idx].tolist())
    assert rows["mine"]["added"] and abs(rows["mine"]["accuracy"] - acc) <= 1e-12
    assert abs(rows["mine"]["macro_std"] - ms) <= 1e-12
    assert rows["mine"]["cifar10_1_v6_accuracy"] is None and rows["mine"]["drop_v6"] is None


def test_several_adds_are_scored_on_their_intersection_with_ranks_and_a_paired_comparison():
    a_idx, b_idx = np.arange(0, 3000), np.arange(2000, 6000)
    a = AddedModel("a", a_idx, _noisy("wrn_28_10", a_idx, 0.02, 1))
    b = AddedModel("b", b_idx, _noisy("resnet_basic_110", b_idx, 0.02, 2))
    table = score(added=[a, b], bootstrap=50, seed=3, analysis_bootstrap=0)
    assert table["n_images"] == 1000 and "intersection" in table["notes"][0]
    rows = table["models"]
    for r in rows:
        better = sum(o["accuracy"] > r["accuracy"] for o in rows)
        assert r["rank_accuracy"] == better + 1
        assert r["rank_discrepancy"] == sum(o["discrepancy"] < r["discrepancy"] for o in rows) + 1
    comp = {c["a"]: c for c in table["comparisons"]}
    assert set(comp) == {"a", "b"}
    idx = np.arange(2000, 3000)
    lab = load_cifar_b("cifar10")
    for name, model in (("a", a), ("b", b)):
        mine = next(r for r in rows if r["name"] == name)
        refs = [r for r in rows if not r["added"]]
        nearest = min(refs, key=lambda r: abs(r["accuracy"] - mine["accuracy"]))
        assert comp[name]["b"] == nearest["name"]
        direct = paired_bootstrap(lab.labels[idx], model.aligned(idx), load_reference().cifar10[nearest["name"]][idx],
                                  lab.subgroups[idx], n_classes=10, n_subgroups=8,
                                  class_names=lab.class_names, subgroup_names=lab.subgroup_names,
                                  bootstrap=50, seed=3)
        assert comp[name]["metrics"] == direct


def test_result_json_only_on_the_full_test_set(tmp_path, capsys):
    preds = _noisy("darc", np.arange(10_000), 0.01, 4)
    np.save(tmp_path / "p.npy", preds)
    assert main(["metrics", str(tmp_path / "p.npy"), "--dataset", "cifar10-b", "--bootstrap", "0",
                 "--json", str(tmp_path / "r.json")]) == 0
    out = tmp_path / "t.json"
    assert main(["reference", *FAST, "--add", f"r={tmp_path / 'r.json'}", "--add", f"p={tmp_path / 'p.npy'}",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows = {r["name"]: r for r in doc["models"]}
    assert rows["r"]["accuracy"] == rows["p"]["accuracy"] == pytest.approx(float((preds == load_cifar_b(
        "cifar10").labels).mean()), abs=1e-15)
    assert [c["a"] for c in doc["comparisons"]] == ["p"]  # a result JSON has no per-image predictions
    assert any("no paired comparison" in n for n in doc["notes"])
    capsys.readouterr()
    pd.DataFrame({"index": np.arange(100), "prediction": preds[:100]}).to_csv(tmp_path / "s.csv", index=False)
    assert main(["reference", *FAST, "--add", f"r={tmp_path / 'r.json'}", "--add", f"s={tmp_path / 's.csv'}"]) == 1
    assert "cannot be re-scored" in capsys.readouterr().err
    sub = json.loads((tmp_path / "r.json").read_text()) | {"n_images": 100}
    (tmp_path / "sub.json").write_text(json.dumps(sub))
    assert main(["reference", *FAST, "--add", f"x={tmp_path / 'sub.json'}"]) == 1
    assert "only for the full test set" in capsys.readouterr().err


def test_run_directory_and_name_clash(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    lab = load_cifar_b("cifar10")
    idx = np.arange(1017)
    pd.DataFrame({"index": idx, "label": lab.labels[idx], "prediction": _noisy("nas", idx, 0.1, 5),
                  "subgroup": lab.subgroups[idx]}).to_parquet(run / "predictions" / "cifar10-b.parquet")
    (run / "eval").mkdir()
    (run / "eval" / "cifar10.1.json").write_text(json.dumps(
        {"dataset": "cifar10.1", "n_images": 2000, "n_official": 2000, "accuracy": 0.8125}))
    out = tmp_path / "t.json"
    assert main(["reference", *FAST, "--add", f"run={run}", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["n_images"] == 1017 and doc["indices"] == "subset"
    mine = next(r for r in doc["models"] if r["name"] == "run")
    assert mine["cifar10_1_v6_accuracy"] == 0.8125 and mine["cifar10_1_v4_accuracy"] is None
    assert mine["drop_v6"] is None  # its full-test-set CIFAR-10 accuracy is unknown from 1,017 images
    assert main(["reference", *FAST, "--add", f"nas={run}"]) == 1
    assert "already used" in capsys.readouterr().err
    with pytest.raises(CifarbError, match="indices must be distinct"):
        AddedModel("x", np.array([1, 1]), np.array([0, 0]))


def test_a_result_without_the_debiased_key_falls_back_to_the_plugin_for_every_row(tmp_path):
    preds = _noisy("darc", np.arange(10_000), 0.01, 4)
    np.save(tmp_path / "p.npy", preds)
    assert main(["metrics", str(tmp_path / "p.npy"), "--dataset", "cifar10-b", "--bootstrap", "0",
                 "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert score(added=[AddedModel("new", result=result)], bootstrap=0,
                 analysis_bootstrap=0)["discrepancy_key"] == "macro_std_debiased"
    for key in ("macro_std_debiased", "p_subgroup_effect"):  # as written before those keys existed
        result.pop(key)
    table = score(added=[AddedModel("old", result=result)], bootstrap=0, analysis_bootstrap=0)
    assert table["discrepancy_key"] == "macro_std"
    assert all(r["discrepancy"] == r["macro_std"] for r in table["models"])
    assert any("lack macro_std_debiased" in n for n in table["notes"])
    old = next(r for r in table["models"] if r["name"] == "old")
    assert old["macro_std_debiased"] is None and old["p_subgroup_effect"] is None
