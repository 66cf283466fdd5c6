"""The read-only result objects: CorruptionMetrics, PairedComparison and AccuracyMetrics as Mappings, and their table views."""

from __future__ import annotations

import copy
import json
import operator
import pickle
from collections.abc import Mapping

import numpy as np
import pytest

from cifarb.metrics import (
    accuracy_only,
    build_result,
    combine_corruptions,
    compute_metrics,
    corruption_metrics,
    paired_bootstrap,
    validate_result,
)
from cifarb.metrics.frame import (
    AccuracyMetrics,
    CorruptionMetrics,
    FrozenDict,
    FrozenList,
    PairedComparison,
    freeze,
    thaw,
)
from cifarb.metrics.multiseed import multiseed_paired_bootstrap

C, G, N = 4, 3, 400
CLASSES = [f"class{i}" for i in range(C)]
SUBGROUPS = ["g0", "g1", "g2"]


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, N)
    groups = rng.integers(0, G, N)

    def predict(acc: float) -> np.ndarray:
        return np.where(rng.random(N) < acc, labels, (labels + 1 + rng.integers(0, C - 1, N)) % C)

    return labels, groups, predict


@pytest.fixture(scope="module")
def corrupted():
    labels, groups, predict = _data(1)
    preds = {"fog": {1: predict(0.85), 2: predict(0.7)}, "snow": {1: predict(0.8)}}
    kw = {"class_names": CLASSES, "subgroup_names": SUBGROUPS, "seed": 4, "null_draws": 30, "permutations": 49}
    return labels, groups, preds, kw, corruption_metrics(labels, preds, groups, bootstrap=120, **kw)


@pytest.fixture(scope="module")
def paired():
    labels, groups, predict = _data(2)
    a, b = predict(0.8), predict(0.65)
    return labels, groups, a, b, paired_bootstrap(labels, a, b, groups, class_names=CLASSES,
                                                  subgroup_names=SUBGROUPS, bootstrap=150, seed=1, null_draws=30)


def _mutations(obj: Mapping) -> list:
    """Ways a consumer could change a result, each of which must raise TypeError."""
    key = next(iter(obj))
    nested = next(v for v in obj.values() if isinstance(v, dict))
    inner = next(iter(nested))
    return [lambda: operator.setitem(obj, key, 1), lambda: operator.delitem(obj, key),
            lambda: setattr(obj, "_data", {}), lambda: operator.setitem(nested, inner, 1),
            lambda: nested.update(x=1), lambda: nested.pop(inner), lambda: nested.setdefault("new", 1),
            lambda: nested.clear(), lambda: operator.delitem(nested, inner)]


def test_results_are_read_only_all_the_way_down(corrupted, paired):
    out, comp = corrupted[-1], paired[-1]
    for obj in (out, comp):
        for mutate in _mutations(obj):
            with pytest.raises(TypeError, match="read-only|does not support item"):
                mutate()
    with pytest.raises(TypeError):
        out["corruptions"]["fog"]["2"]["accuracy"] = 0.0
    with pytest.raises(TypeError):
        out["cells"].append({})
    with pytest.raises(TypeError):
        out["cells"][0]["n"] = 0
    with pytest.raises(TypeError):
        comp["accuracy"]["ci95"][0] = 0.0
    before = out["corruptions"]["fog"]["2"]["accuracy"]
    plain = out.to_dict()  # a fresh copy: changing it leaves the result as it was
    plain["corruptions"]["fog"]["2"]["accuracy"] = -1.0
    plain["cells"].append({})
    assert out["corruptions"]["fog"]["2"]["accuracy"] == before and len(out["cells"]) == len(plain["cells"]) - 1
    assert type(plain) is dict and type(plain["corruptions"]["fog"]) is dict and type(plain["cells"]) is list


def test_frozen_containers_behave_as_dicts_and_lists_for_readers():
    frozen = freeze({"a": [1, (2, 3)], "b": {"c": None}})
    assert isinstance(frozen, FrozenDict) and isinstance(frozen["a"], FrozenList)
    assert frozen == {"a": [1, [2, 3]], "b": {"c": None}} and frozen["a"][1] == [2, 3]
    assert json.loads(json.dumps(frozen)) == frozen
    for clone in (copy.deepcopy(frozen), copy.copy(frozen), pickle.loads(pickle.dumps(frozen))):
        assert clone == frozen and isinstance(clone, FrozenDict)
    assert thaw(frozen) == frozen and type(thaw(frozen)["a"][1]) is list
    for mutate in (lambda: frozen["a"].extend([4]), lambda: frozen["a"].sort(), lambda: frozen["a"].__iadd__([1]),
                   lambda: frozen.__ior__({"x": 1}), lambda: frozen.popitem()):
        with pytest.raises(TypeError):
            mutate()


def test_corruption_metrics_is_a_mapping_with_the_contract_keys(corrupted):
    labels, groups, preds, kw, out = corrupted
    plain = out.to_dict()
    assert isinstance(out, Mapping) and isinstance(out, CorruptionMetrics)
    assert set(out) == set(plain) and len(out) == len(plain) and dict(out.items()) == plain and out == plain
    assert {"accuracy", "macro_std", "cells", "corruptions", "corruptions_mean", "settings"} <= set(out)
    assert "corruptions" in out and out.get("no such key") is None and list(out.keys()) == list(plain)
    assert set(out["corruptions"]) == {"fog", "snow"} and set(out["corruptions"]["fog"]) == {"1", "2"}
    assert json.loads(json.dumps(plain)) == plain  # strict JSON round trip
    assert json.loads(json.dumps(out["corruptions"])) == plain["corruptions"]  # nested values are JSON-ready too
    assert pickle.loads(pickle.dumps(out)) == out and copy.deepcopy(out) == out
    assert repr(out).startswith("<CorruptionMetrics 2 corruptions, 3 pairs, mean accuracy")


def test_corruption_metrics_equals_an_independent_computation_per_pair(corrupted):
    labels, groups, preds, kw, out = corrupted
    # without CIs, the result is combine_corruptions of compute_metrics per pair (its documented definition)
    off = corruption_metrics(labels, preds, groups, bootstrap=0, **kw)
    direct = {name: {sev: compute_metrics(labels, p, groups, bootstrap=0, **kw).to_dict() for sev, p in by_sev.items()}
              for name, by_sev in preds.items()}
    assert json.loads(json.dumps(off.to_dict())) == combine_corruptions(direct)
    # with CIs: point values, cells, D's interval and the p-value of a pair are its own compute_metrics'
    single = compute_metrics(labels, preds["fog"][2], groups, bootstrap=120, **kw)
    pair = out["corruptions"]["fog"]["2"]
    mine = single.to_dict()
    for key in ("accuracy", "macro_std", "macro_std_null", "macro_std_excess", "macro_std_debiased",
                "worst_cell_accuracy", "subgroup_gap", "class_accuracy", "subgroup_accuracy", "cells",
                "p_subgroup_effect"):
        assert pair[key] == mine[key], key
    assert pair["ci95"]["macro_std_debiased"] == mine["ci95"]["macro_std_debiased"]
    assert out["accuracy"] == pytest.approx(np.mean([(p == labels).mean() for by in preds.values()
                                                     for p in by.values()]))


def test_corruption_metrics_views_equal_the_dict(corrupted):
    labels, groups, preds, kw, out = corrupted
    assert out.pairs == [("fog", "1"), ("fog", "2"), ("snow", "1")]
    frame = out.to_frame()
    assert list(frame.columns) == ["corruption", "severity", "class", "subgroup", "n", "correct", "accuracy",
                                   "ci_lo", "ci_hi"]
    for (c, s), rows in frame.groupby(["corruption", "severity"], sort=False):
        cells = out["corruptions"][c][s]["cells"]
        assert rows[["class", "subgroup", "n", "accuracy"]].to_dict("records") == cells
        p = preds[c][int(s)]
        for row in rows.itertuples():  # correct counts by hand from the arrays
            members = (labels == CLASSES.index(row[3])) & (groups == SUBGROUPS.index(row.subgroup))
            assert row.correct == int((p[members] == labels[members]).sum()) and row.n == int(members.sum())
        assert (rows["ci_lo"] <= rows["accuracy"]).all() and (rows["accuracy"] <= rows["ci_hi"]).all()
    assert out.by_cell.equals(frame)
    by_pair = out.by_pair
    assert list(by_pair.index) == out.pairs
    for (c, s), row in by_pair.iterrows():
        for name, value in row.items():
            expected = out["corruptions"][c][s][name]
            assert (np.isnan(value) and expected is None) or value == expected
    assert out.by_subgroup.to_dict() == out["subgroup_accuracy"] and out.by_class.to_dict() == out["class_accuracy"]
    assert out.overall == out["accuracy"] and out.aggregates["macro_std"] == out["macro_std"]
    assert out.cells == out["cells"]
    one = out.pair("fog", 2)
    assert {k: v for k, v in one.to_dict().items() if k != "settings"} == out["corruptions"]["fog"]["2"]
    assert one.settings["bootstrap"] == 120 and one.by_subgroup.to_dict() == out["corruptions"]["fog"]["2"][
        "subgroup_accuracy"]
    with pytest.raises(KeyError, match="no pair fog severity 5"):
        out.pair("fog", 5)


def test_a_result_built_from_corruption_metrics_is_plain_and_valid(corrupted):
    out = corrupted[-1]
    result = build_result(out, dataset="cifar10-c", n_images=N, n_official=10_000, data_verified=False,
                          provenance={"model": "m", "model_sha256": None, "data_sha256": {}})
    validate_result(result)
    result["corruptions"]["fog"]["1"]["accuracy"] = 0.5  # the result JSON is the caller's to change
    assert out["corruptions"]["fog"]["1"]["accuracy"] != 0.5
    assert type(result["settings"]) is dict


def test_paired_comparison_is_a_mapping_and_its_views_equal_the_dict(paired):
    labels, groups, a, b, comp = paired
    plain = comp.to_dict()
    assert isinstance(comp, PairedComparison) and isinstance(comp, Mapping) and comp == plain
    assert set(comp) == set(plain) and list(comp.items()) == list(plain.items())
    assert json.loads(json.dumps(plain)) == plain and set(plain["accuracy"]) == {"a", "b", "diff", "ci95"}
    frame = comp.to_frame()
    assert list(frame.columns) == ["a", "b", "diff", "ci_lo", "ci_hi"] and list(frame.index) == list(comp)
    for name, row in frame.iterrows():
        entry = plain[name]
        expected = [entry["a"], entry["b"], entry["diff"], *(entry["ci95"] or [None, None])]
        assert [None if np.isnan(v) else v for v in row] == expected, name
    # independent: the accuracies by hand, and each side's metrics equal its own compute_metrics'
    assert comp.overall == pytest.approx((a == labels).mean() - (b == labels).mean())
    own_a = compute_metrics(labels, a, groups, bootstrap=0, seed=1, null_draws=30)
    assert comp["macro_std"]["a"] == own_a.macro_std and comp["macro_std_excess"]["a"] == own_a.macro_std_excess
    assert comp.aggregates == {name: entry["diff"] for name, entry in plain.items()}
    by_sub = comp.by_subgroup
    assert list(by_sub.index) == SUBGROUPS and list(by_sub.columns) == ["a", "b", "diff"]
    for j, name in enumerate(SUBGROUPS):
        m = groups == j
        assert by_sub.loc[name, "a"] == pytest.approx((a[m] == labels[m]).mean())
        assert by_sub.loc[name, "diff"] == pytest.approx((a[m] == labels[m]).mean() - (b[m] == labels[m]).mean())
    by_class = comp.by_class
    for i, name in enumerate(CLASSES):
        m = labels == i
        assert by_class.loc[name, "b"] == pytest.approx((b[m] == labels[m]).mean())
    cells = comp.by_cell
    assert list(cells.columns) == ["class", "subgroup", "n", "correct_a", "correct_b", "accuracy_a", "accuracy_b",
                                   "diff"]
    assert cells["n"].sum() == N and cells["correct_a"].sum() == (a == labels).sum()
    for row in cells.itertuples():
        m = (labels == CLASSES.index(row[1])) & (groups == SUBGROUPS.index(row.subgroup))
        assert row.accuracy_a == pytest.approx((a[m] == labels[m]).mean())
        assert row.diff == pytest.approx((a[m] == labels[m]).mean() - (b[m] == labels[m]).mean())
    assert comp.per_seed is None and comp.n_seed_pairs == 1
    assert repr(comp).startswith("<PairedComparison 8 metrics, Δaccuracy")


def test_multiseed_comparison_is_the_same_object_with_per_seed_views():
    labels, groups, predict = _data(3)
    seeds = [(labels, groups, predict(0.8), predict(0.7)) for _ in range(3)]
    comp = multiseed_paired_bootstrap(seeds, same_images=True, class_names=CLASSES, subgroup_names=SUBGROUPS,
                                      bootstrap=80, seed=2, null_draws=20)
    plain = comp.to_dict()
    assert isinstance(comp, PairedComparison) and comp == plain and comp.n_seed_pairs == 3
    with pytest.raises(TypeError):
        comp["accuracy"]["per_seed"][0] = 0.0
    per_seed = comp.per_seed
    assert list(per_seed.index) == list(comp) and per_seed.shape == (len(comp), 3)
    for name in comp:
        expected = [np.nan if v is None else v for v in plain[name]["per_seed"]]
        np.testing.assert_array_equal(per_seed.loc[name].to_numpy(), expected)
    assert per_seed.loc["accuracy"].tolist() == pytest.approx([(a == labels).mean() - (b == labels).mean()
                                                               for _, _, a, b in seeds])
    by_sub = comp.by_subgroup  # means over the seed pairs of each side's subgroup accuracy
    for j, name in enumerate(SUBGROUPS):
        m = groups == j
        assert by_sub.loc[name, "a"] == pytest.approx(np.mean([(a[m] == labels[m]).mean() for _, _, a, _ in seeds]))
    assert "n" not in comp.by_cell.columns and list(comp.to_frame().columns) == ["a", "b", "diff", "ci_lo", "ci_hi"]


def test_accuracy_only_is_a_read_only_mapping_with_a_class_table():
    labels, _, predict = _data(4)
    preds = predict(0.75)
    out = accuracy_only(labels, preds, class_names=CLASSES, bootstrap=200, seed=3)
    plain = out.to_dict()
    assert isinstance(out, AccuracyMetrics) and isinstance(out, Mapping) and out == plain
    # the shape of SubgroupMetrics.to_dict(), as before: same keys in the same order
    assert list(out) == list(compute_metrics(labels, preds, None, bootstrap=0).to_dict())
    assert json.loads(json.dumps(plain)) == plain
    for mutate in (lambda: operator.setitem(out, "accuracy", 1.0), lambda: operator.setitem(out["settings"], "x", 1),
                   lambda: out["class_accuracy_ci95"]["class0"].append(0.0)):
        with pytest.raises(TypeError):
            mutate()
    frame = out.to_frame()
    assert list(frame.columns) == ["class", "n", "correct", "accuracy", "ci_lo", "ci_hi"]
    for row in frame.itertuples():
        m = labels == CLASSES.index(row[1])
        assert row.n == m.sum() and row.correct == (preds[m] == labels[m]).sum()
        assert row.accuracy == plain["class_accuracy"][row[1]] and [row.ci_lo, row.ci_hi] == plain[
            "class_accuracy_ci95"][row[1]]
    assert out.by_class.to_dict() == plain["class_accuracy"] and out.by_subgroup is None
    assert out.overall == pytest.approx((preds == labels).mean()) and out.aggregates["macro_std"] is None
    assert repr(out) == f"<AccuracyMetrics 4 classes, 400 images, accuracy {100 * out.overall:.2f} %>"
    result = build_result(out, dataset="cifar10.1", n_images=N, n_official=2000, data_verified=False,
                          provenance={"model": "m", "model_sha256": None, "data_sha256": {}})
    validate_result(result)
