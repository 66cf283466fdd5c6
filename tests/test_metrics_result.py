"""The result contract: build_result, combine_corruptions and validation against the shipped schema."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from cifarb import __version__
from cifarb.metrics import (
    PAPER18,
    ResultValidationError,
    accuracy_only,
    build_result,
    combine_corruptions,
    compute_metrics,
    load_schema,
    validate_result,
)
from test_metrics_core import datasets

PROV = {"model": "preds.npy", "model_sha256": "0" * 64, "data_sha256": {"cifar10_bgd_cl2img_gp_fine.npy": "a" * 64}}


def sample_b_result(bootstrap=100):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 3000)
    groups = rng.integers(0, 8, 3000)
    preds = np.where(rng.random(3000) < 0.9, labels, (labels + 1) % 10)
    m = compute_metrics(labels, preds, groups, class_names=[f"class{i}" for i in range(10)],
                        subgroup_names=["green", "gray", "blue", "white", "black", "brown", "red", "other"],
                        bootstrap=bootstrap, null_draws=50)
    return build_result(m.to_dict(), dataset="cifar10-b", n_images=3000, n_official=10_000, data_verified=True,
                        provenance=PROV)


def test_schema_ships_with_the_package_and_is_valid():
    import jsonschema

    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for key in ("schema_version", "cifarb_version", "dataset", "n_images", "n_official", "data_verified",
                "accuracy", "macro_std", "macro_std_null", "macro_std_excess", "worst_cell_accuracy",
                "worst_subgroup_accuracy", "subgroup_gap", "mean_cell_accuracy", "subgroup_accuracy",
                "class_accuracy", "cells", "ci95", "settings", "provenance"):
        assert key in schema["required"], key


def test_b_result_has_the_contract_keys_and_validates():
    result = sample_b_result()
    validate_result(result)
    assert result["schema_version"] == 1 and result["cifarb_version"] == __version__
    assert list(result)[:6] == ["schema_version", "cifarb_version", "dataset", "n_images", "n_official",
                                "data_verified"]
    assert set(result["ci95"]) == {"accuracy", "macro_std", "macro_std_excess", "macro_std_debiased",
                                   "worst_cell_accuracy", "worst_subgroup_accuracy", "subgroup_gap",
                                   "mean_cell_accuracy"}
    assert 0 < result["p_subgroup_effect"] <= 1 and result["settings"]["permutations"] == 999
    assert result["macro_std_debiased"] <= result["macro_std"]
    assert set(result["settings"]) >= {"bootstrap", "seed", "min_cell_size", "min_cell_size_worst", "subgroup_names"}
    assert json.loads(json.dumps(result)) == result  # plain JSON types throughout
    off = sample_b_result(bootstrap=0)
    validate_result(off)
    assert off["ci95"] is None and off["settings"]["bootstrap"] == 0
    assert off["p_subgroup_effect"] is None and off["macro_std_debiased"] is not None


def test_results_written_before_the_debiased_keys_still_validate_and_print():
    from cifarb.metrics.table import format_result

    old = sample_b_result()
    for key in ("macro_std_debiased", "p_subgroup_effect"):
        old.pop(key)
    old["ci95"].pop("macro_std_debiased")
    old["settings"].pop("permutations")
    validate_result(old)
    old["ci95"]["macro_std"] = [old["macro_std"] + 0.01, old["macro_std"] + 0.03]  # an old percentile CI
    text = format_result(old)
    d_line = next(line for line in text.splitlines() if line.startswith("MacroStd debiased"))
    assert "—" in d_line and "older cifarb" in d_line
    ms_line = next(line for line in text.splitlines() if line.startswith("MacroStd ") and "debiased" not in line)
    assert "need not contain the estimate" in ms_line
    new = format_result(sample_b_result())
    assert "need not contain" not in new and "p(no subgroup effect) = " in new
    assert "min-cell-size-worst 30" not in new  # 3,000 images: most cells hold >= 10


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(max_n=80))
def test_random_results_validate(data):
    labels, preds, groups, n_classes, n_groups = data
    m = compute_metrics(labels, preds, groups, n_classes=n_classes, n_subgroups=n_groups, bootstrap=30,
                        null_draws=10, min_cell_size_worst=4)
    validate_result(build_result(m.to_dict(), dataset="cifar100-b", n_images=labels.size, n_official=10_000,
                                 data_verified=False, provenance=PROV))


def test_cifar10_1_result_has_null_subgroup_keys_and_validates():
    labels = np.repeat(np.arange(10), 20)
    preds = np.where(np.arange(200) % 7 == 0, (labels + 1) % 10, labels)
    result = build_result(accuracy_only(labels, preds, bootstrap=100), dataset="cifar10.1", n_images=200,
                          n_official=2000, data_verified=True, provenance=PROV)
    validate_result(result)
    assert result["macro_std_debiased"] is None and result["p_subgroup_effect"] is None
    assert result["ci95"]["macro_std_debiased"] is None and result["settings"]["permutations"] == 999
    bad = copy.deepcopy(result)
    bad["macro_std"] = 0.1
    with pytest.raises(ResultValidationError, match="macro_std"):
        validate_result(bad)
    bad = copy.deepcopy(result)
    bad["cells"] = [{"class": "0", "subgroup": "x", "n": 3, "accuracy": 1.0}]
    with pytest.raises(ResultValidationError, match="cells"):
        validate_result(bad)


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r.pop("macro_std_null"), "macro_std_null"),
    (lambda r: r.__setitem__("accuracy", 1.2), "accuracy"),
    (lambda r: r.__setitem__("accuracy", float("nan")), "strict JSON"),
    (lambda r: r.__setitem__("dataset", "cifar10"), "dataset"),
    (lambda r: r["ci95"].__setitem__("macro_std", [0.3, 0.2]), "lo <= hi"),
    (lambda r: r["ci95"].pop("subgroup_gap"), "subgroup_gap"),
    (lambda r: r["cells"][0].__setitem__("n", 0), "cells/0/n"),
    (lambda r: r["provenance"].pop("model_sha256"), "model_sha256"),
    (lambda r: r["settings"].pop("seed"), "seed"),
    (lambda r: r.__setitem__("corruptions", {}), "corruptions"),
    (lambda r: r.__setitem__("macro_std", None), "macro_std"),
    (lambda r: r.__setitem__("p_subgroup_effect", 1.5), "p_subgroup_effect"),
    (lambda r: r["ci95"].__setitem__("macro_std_debiased", [0.1]), "macro_std_debiased"),
    (lambda r: r["settings"].__setitem__("permutations", -1), "permutations"),
])
def test_validation_rejects_broken_results(mutate, match):
    result = sample_b_result(bootstrap=50)
    mutate(result)
    with pytest.raises(ResultValidationError, match=match):
        validate_result(result)


def test_build_result_needs_provenance_fields():
    with pytest.raises(ResultValidationError, match="model_sha256"):
        build_result({}, dataset="cifar10-b", n_images=1, n_official=1, data_verified=True,
                     provenance={"model": "x", "data_sha256": {}})


def pair_metrics(acc, gap=0.1):
    """A hand-made per-pair metric dict with two classes and two subgroups."""
    return {
        "accuracy": acc, "macro_std": gap, "macro_std_null": 0.02, "macro_std_excess": gap - 0.02,
        "macro_std_debiased": gap - 0.01, "p_subgroup_effect": 0.01, "worst_cell_accuracy": acc - gap, "worst_subgroup_accuracy": acc - gap / 2, "subgroup_gap": gap,
        "mean_cell_accuracy": acc, "subgroup_accuracy": {"green": acc + gap / 2, "blue": acc - gap / 2},
        "class_accuracy": {"cat": acc, "dog": acc},
        "cells": [{"class": "cat", "subgroup": "green", "n": 10, "accuracy": acc},
                  {"class": "dog", "subgroup": "blue", "n": 12, "accuracy": acc}],
        "ci95": None,
        "settings": {"bootstrap": 0, "seed": 0, "min_cell_size": 1, "min_cell_size_worst": 10,
                     "subgroup_names": ["green", "blue"]},
    }


def test_combine_corruptions_means_and_blocks():
    per_pair = {"fog": {1: pair_metrics(0.9), 2: pair_metrics(0.8)}, "snow": {"1": pair_metrics(0.7, 0.2)}}
    out = combine_corruptions(per_pair)
    assert out["accuracy"] == pytest.approx((0.9 + 0.8 + 0.7) / 3)  # unweighted over the 3 pairs
    assert out["macro_std"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)
    assert out["macro_std_debiased"] == pytest.approx((0.09 + 0.09 + 0.19) / 3)
    assert out["p_subgroup_effect"] is None and out["corruptions_mean"]["all"]["p_subgroup_effect"] is None
    assert out["corruptions"]["fog"]["1"]["p_subgroup_effect"] == 0.01
    assert out["subgroup_accuracy"]["green"] == pytest.approx((0.95 + 0.85 + 0.8) / 3)
    assert out["cells"][0] == {"class": "cat", "subgroup": "green", "n": 10, "accuracy": pytest.approx(0.8)}
    assert list(out["corruptions"]) == ["fog", "snow"] and list(out["corruptions"]["fog"]) == ["1", "2"]
    assert "settings" not in out["corruptions"]["fog"]["1"] and out["settings"]["seed"] == 0
    by_sev = out["corruptions_mean"]["by_severity"]
    assert by_sev["1"]["accuracy"] == pytest.approx(0.8) and by_sev["1"]["n_pairs"] == 2
    assert by_sev["2"]["accuracy"] == pytest.approx(0.8) and by_sev["2"]["n_pairs"] == 1
    assert out["corruptions_mean"]["all"]["accuracy"] == out["accuracy"]
    assert out["corruptions_mean"]["paper18"] is None  # only 2 of the 18 present
    result = build_result(out, dataset="cifar10-c-local", n_images=22, n_official=10_000, data_verified=False,
                          provenance=PROV)
    validate_result(result)


def test_paper18_covers_the_18_without_glass_blur():
    per_pair = {name: {s: pair_metrics(0.5 + 0.02 * i) for s in (1, 2)} for i, name in enumerate(PAPER18)}
    per_pair["glass_blur"] = {1: pair_metrics(0.1), 2: pair_metrics(0.1)}
    out = combine_corruptions(per_pair)
    paper = out["corruptions_mean"]["paper18"]
    assert paper["n_pairs"] == 36
    assert paper["accuracy"] == pytest.approx(np.mean([0.5 + 0.02 * i for i in range(18)]))
    assert out["accuracy"] == pytest.approx((paper["accuracy"] * 36 + 0.2) / 38)
    del per_pair["fog"]
    assert combine_corruptions(per_pair)["corruptions_mean"]["paper18"] is None


def test_combine_rejects_mismatched_cells_and_bad_severities():
    other = pair_metrics(0.8)
    other["cells"][0]["n"] = 11
    with pytest.raises(ResultValidationError, match="same images"):
        combine_corruptions({"fog": {1: pair_metrics(0.9), 2: other}})
    with pytest.raises(ResultValidationError, match="integers"):
        combine_corruptions({"fog": {"high": pair_metrics(0.9)}})
    with pytest.raises(ResultValidationError, match="no corruption"):
        combine_corruptions({})


@pytest.mark.parametrize("dataset, prefix, warns", [("cifar10", None, False), ("cifar10", 1017, True),
                                                     ("cifar100", None, True)])
def test_small_cells_warning_on_the_real_compositions(dataset, prefix, warns):
    from cifarb.data.cifar_b import load_cifar_b
    from cifarb.metrics.table import format_result

    bundle = load_cifar_b(dataset)
    labels, groups = bundle.labels[:prefix], bundle.subgroups[:prefix]
    m = compute_metrics(labels, labels, groups, class_names=bundle.class_names,
                        subgroup_names=bundle.subgroup_names, bootstrap=0, null_draws=5)
    assert ("consider --min-cell-size-worst 30" in format_result(m.to_dict())) is warns
    m30 = compute_metrics(labels, labels, groups, class_names=bundle.class_names,
                          subgroup_names=bundle.subgroup_names, bootstrap=0, null_draws=5, min_cell_size_worst=30)
    assert "min-cell-size-worst 30" not in format_result(m30.to_dict())
