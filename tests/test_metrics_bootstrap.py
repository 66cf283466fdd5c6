"""Bootstrap CIs, the count-based resampling's equivalence to resampling images, and paired/joint bootstraps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from cifarb.metrics import (
    CI_METRICS,
    build_result,
    compute_metrics,
    corruption_metrics,
    paired_bootstrap,
    validate_result,
)
from cifarb.metrics import _engine as E
from test_metrics_core import datasets, reference

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def structured(rng, n_per_cell, acc):
    """Labels/subgroups with the given (C, G) cell sizes; each cell gets about acc[c, g] right."""
    labels, groups, right = [], [], []
    for (c, g), n in np.ndenumerate(n_per_cell):
        labels += [c] * n
        groups += [g] * n
        right += list(rng.random(n) < acc[c, g])
    labels, groups, right = map(np.array, (labels, groups, right))
    n_classes = n_per_cell.shape[0]
    return labels, np.where(right, labels, (labels + 1) % n_classes), groups


def naive_stratified_samples(labels, preds, groups, draws, rng, **ref_kw):
    """Resample images with replacement inside each cell, then evaluate the plain-loop reference."""
    cell = labels * (groups.max() + 1) + groups
    members = [np.flatnonzero(cell == c) for c in np.unique(cell)]
    out = {"accuracy": [], "macro_std": [], "worst_cell_accuracy": [], "subgroup_gap": []}
    for _ in range(draws):
        idx = np.concatenate([rng.choice(m, size=m.size, replace=True) for m in members])
        ref = reference(labels[idx], preds[idx], groups[idx], **ref_kw)
        for key in out:
            out[key].append(ref[key])
    return {key: np.array(v, dtype=float) for key, v in out.items()}


def test_count_resampling_matches_resampling_images():
    """Binomial(n_cg, a_cg) per cell is the resampled cell's correct count: the two procedures give
    the same distribution of every metric (two-sample KS tests and matching mean / sd)."""
    rng = np.random.default_rng(7)
    sizes = np.array([[12, 5, 30], [8, 20, 3], [15, 9, 11]])
    acc = np.array([[0.9, 0.6, 0.8], [0.5, 0.95, 0.7], [0.75, 0.85, 0.4]])
    labels, preds, groups = structured(rng, sizes, acc)
    draws = 2500
    naive = naive_stratified_samples(labels, preds, groups, draws, np.random.default_rng(1), min_cell_size_worst=5)
    n, k = E.cell_counts(labels, labels == preds, groups, 3, 3)
    ours = E.scalar_metrics(n, E.stratified_resample_counts(n, k, draws, np.random.default_rng(2)),
                            min_cell_size_worst=5)
    for key, sample in naive.items():
        assert stats.ks_2samp(sample, ours[key]).pvalue > 1e-3, key
        assert ours[key].mean() == pytest.approx(sample.mean(), abs=4 * sample.std() / np.sqrt(draws) + 1e-12)
        assert ours[key].std() == pytest.approx(sample.std(), rel=0.1)


def test_paired_count_resampling_matches_paired_image_resampling():
    rng = np.random.default_rng(3)
    sizes = np.array([[20, 6], [9, 25]])
    labels, pred_a, groups = structured(rng, sizes, np.array([[0.8, 0.6], [0.9, 0.5]]))
    flip = rng.random(labels.size) < 0.25  # B agrees with A on most images: strongly paired
    pred_b = np.where(flip, np.where(pred_a == labels, (labels + 1) % 2, labels), pred_a)
    cell = labels * 2 + groups
    members = [np.flatnonzero(cell == c) for c in np.unique(cell)]
    draws = 2500
    naive = {"accuracy": [], "macro_std": []}
    r = np.random.default_rng(4)
    for _ in range(draws):
        idx = np.concatenate([r.choice(m, size=m.size, replace=True) for m in members])
        ra = reference(labels[idx], pred_a[idx], groups[idx])
        rb = reference(labels[idx], pred_b[idx], groups[idx])
        for key in naive:
            naive[key].append(ra[key] - rb[key])
    n, k_a = E.cell_counts(labels, labels == pred_a, groups, 2, 2)
    _, k_b = E.cell_counts(labels, labels == pred_b, groups, 2, 2)
    _, k11 = E.cell_counts(labels, (labels == pred_a) & (labels == pred_b), groups, 2, 2)
    xa, xb = E.paired_resample_counts(n, k11, k_a - k11, k_b - k11, draws, np.random.default_rng(5))
    ma, mb = E.scalar_metrics(n, xa), E.scalar_metrics(n, xb)
    for key, sample in naive.items():
        ours = ma[key] - mb[key]
        assert stats.ks_2samp(np.array(sample), ours).pvalue > 1e-3, key
        assert ours.std() == pytest.approx(np.std(sample), rel=0.1)
    # marginally each side is the ordinary stratified bootstrap of its own predictions
    assert (xa <= n).all() and (xb <= n).all()
    assert xa.mean(axis=0) == pytest.approx(k_a, abs=0.5)


@FAST
@given(datasets(max_n=120), st.integers(0, 2**16))
def test_ci_properties(data, seed):
    labels, preds, groups, n_classes, n_groups = data
    kw = {"n_classes": n_classes, "n_subgroups": n_groups, "bootstrap": 200, "seed": seed, "null_draws": 20,
          "min_cell_size_worst": 3}
    m = compute_metrics(labels, preds, groups, **kw)
    # accuracy-type metrics: the CI contains the point estimate
    for name in ("accuracy", "mean_cell_accuracy"):
        lo, hi = m.ci95[name]
        assert lo <= getattr(m, name) <= hi
    for ci_map, values in ((m.class_accuracy_ci95, m.class_accuracy), (m.subgroup_accuracy_ci95, m.subgroup_accuracy)):
        for key, value in values.items():
            if value is None:
                assert ci_map[key] is None
            else:
                assert ci_map[key][0] <= value <= ci_map[key][1]
    # MacroStd, its excess and the min/max-type metrics: lo <= hi inside the allowed range
    for name in ("macro_std", "worst_cell_accuracy", "worst_subgroup_accuracy", "subgroup_gap"):
        if getattr(m, name) is None:
            assert m.ci95[name] is None
            continue
        lo, hi = m.ci95[name]
        assert 0.0 <= lo <= hi <= 1.0
    lo, hi = m.ci95["macro_std_excess"]
    assert -1.0 <= lo <= hi <= 1.0
    # reproducible under a seed
    assert compute_metrics(labels, preds, groups, **kw).to_dict() == m.to_dict()


def test_accuracy_ci_contains_estimate_even_with_a_handful_of_resamples():
    rng = np.random.default_rng(0)
    labels, preds, groups = structured(rng, np.array([[30, 3], [4, 40]]), np.array([[0.7, 0.3], [0.5, 0.9]]))
    for seed in range(30):
        m = compute_metrics(labels, preds, groups, bootstrap=2, seed=seed, null_draws=5)
        for name in ("accuracy", "mean_cell_accuracy"):
            assert m.ci95[name][0] <= getattr(m, name) <= m.ci95[name][1]


def test_seed_changes_resamples_but_not_the_noise_floor_across_b():
    rng = np.random.default_rng(1)
    labels, preds, groups = structured(rng, np.array([[50, 20], [30, 40]]), np.array([[0.8, 0.6], [0.7, 0.9]]))
    a = compute_metrics(labels, preds, groups, bootstrap=300, seed=1)
    b = compute_metrics(labels, preds, groups, bootstrap=300, seed=2)
    c = compute_metrics(labels, preds, groups, bootstrap=50, seed=1)
    assert a.ci95["macro_std"] != b.ci95["macro_std"]
    assert a.macro_std_null != b.macro_std_null
    assert a.macro_std_null == c.macro_std_null  # the floor has its own stream, independent of B


def test_accuracy_ci_width_matches_stratified_binomial_variance():
    """Independent check of scale: the stratified bootstrap variance of accuracy is
    sum_cells n a (1 - a) / N^2; the 95 % CI is about +-1.96 of its square root."""
    rng = np.random.default_rng(2)
    sizes = rng.integers(20, 400, size=(10, 8))
    labels, preds, groups = structured(rng, sizes, rng.uniform(0.6, 0.99, size=(10, 8)))
    m = compute_metrics(labels, preds, groups, bootstrap=4000, seed=0, null_draws=10)
    n, k = E.cell_counts(labels, labels == preds, groups, 10, 8)
    a = k / n
    sd = np.sqrt((n * a * (1 - a)).sum()) / n.sum()
    lo, hi = m.ci95["accuracy"]
    assert (hi - lo) / 2 == pytest.approx(1.96 * sd, rel=0.08)


def test_paired_bootstrap_diff_and_its_variance():
    rng = np.random.default_rng(3)
    sizes = rng.integers(30, 200, size=(5, 4))
    labels, pred_a, groups = structured(rng, sizes, rng.uniform(0.7, 0.95, size=(5, 4)))
    flip = rng.random(labels.size) < 0.1
    pred_b = np.where(flip, np.where(pred_a == labels, (labels + 1) % 5, labels), pred_a)
    out = paired_bootstrap(labels, pred_a, pred_b, groups, bootstrap=4000, seed=0, null_draws=200)
    assert set(out) == set(CI_METRICS)
    ma = compute_metrics(labels, pred_a, groups, bootstrap=0, null_draws=200)
    mb = compute_metrics(labels, pred_b, groups, bootstrap=0, null_draws=200)
    for name in CI_METRICS:
        assert out[name]["a"] == pytest.approx(getattr(ma, name))
        assert out[name]["b"] == pytest.approx(getattr(mb, name))
        assert out[name]["diff"] == pytest.approx(getattr(ma, name) - getattr(mb, name))
        lo, hi = out[name]["ci95"]
        assert lo <= hi
    # paired variance of the accuracy difference: sum_cells n (p10 + p01 - (p10 - p01)^2) / N^2
    n, _ = E.cell_counts(labels, labels == pred_a, groups, 5, 4)
    _, k10 = E.cell_counts(labels, (labels == pred_a) & (labels != pred_b), groups, 5, 4)
    _, k01 = E.cell_counts(labels, (labels != pred_a) & (labels == pred_b), groups, 5, 4)
    p10, p01 = k10 / n, k01 / n
    sd = np.sqrt((n * (p10 + p01 - (p10 - p01) ** 2)).sum()) / n.sum()
    lo, hi = out["accuracy"]["ci95"]
    assert (hi - lo) / 2 == pytest.approx(1.96 * sd, rel=0.1)
    # treating A and B as independent would widen the difference's CI: pairing is what makes
    # "is A better than B" answerable
    w_a, w_b = (np.diff(compute_metrics(labels, p, groups, bootstrap=1000, null_draws=10).ci95["accuracy"])[0]
                for p in (pred_a, pred_b))
    assert hi - lo < 0.8 * np.hypot(w_a, w_b)


def test_paired_debiased_difference_is_the_difference_of_the_two_models_own_intervals():
    rng = np.random.default_rng(8)
    sizes = rng.integers(5, 60, size=(4, 3))
    labels, pred_a, groups = structured(rng, sizes, np.full((4, 3), 0.9))
    pred_b = np.where(rng.random(labels.size) < 0.15, (labels + 1) % 4, pred_a)  # B only less accurate
    out = paired_bootstrap(labels, pred_a, pred_b, groups, bootstrap=50, seed=2, null_draws=20)["macro_std_debiased"]
    # each model scored on its own by the public API, with the same seed
    ma, mb = (compute_metrics(labels, p, groups, bootstrap=50, seed=2, null_draws=20, permutations=0)
              for p in (pred_a, pred_b))
    assert out["diff"] == pytest.approx(ma.macro_std_debiased - mb.macro_std_debiased)
    (lo_a, hi_a), (lo_b, hi_b) = ma.ci95["macro_std_debiased"], mb.ci95["macro_std_debiased"]
    assert out["ci95"] == pytest.approx([lo_a - hi_b, hi_a - lo_b])
    assert out["ci95"][0] <= out["diff"] <= out["ci95"][1]
    assert lo_a < hi_a and lo_b < hi_b  # a real interval on each side, not a degenerate check
    # swapping the models mirrors the interval
    back = paired_bootstrap(labels, pred_b, pred_a, groups, bootstrap=50, seed=2, null_draws=20)
    assert back["macro_std_debiased"]["ci95"] == pytest.approx([-out["ci95"][1], -out["ci95"][0]])


def test_paired_bootstrap_of_identical_predictions_and_without_subgroups():
    rng = np.random.default_rng(4)
    labels, preds, groups = structured(rng, np.array([[40, 10], [25, 30]]), np.array([[0.8, 0.6], [0.7, 0.9]]))
    same = paired_bootstrap(labels, preds, preds, groups, bootstrap=200)
    for name, entry in same.items():
        assert entry["diff"] == 0.0 and entry["ci95"] == [0.0, 0.0], name
    acc_only = paired_bootstrap(labels, preds, labels, None, bootstrap=200)
    assert list(acc_only) == ["accuracy"]
    assert acc_only["accuracy"]["diff"] == pytest.approx((preds == labels).mean() - 1.0)
    off = paired_bootstrap(labels, preds, labels, groups, bootstrap=0)
    assert all(entry["ci95"] is None for entry in off.values())


PAIRS = ("gaussian_noise", "fog", "snow")


def corrupted(rng, labels, base_acc=0.9):
    """Predictions per (corruption, severity) that share which images are hard (correlated errors)."""
    hardness = rng.random(labels.size)
    out = {}
    for i, name in enumerate(PAIRS):
        out[name] = {}
        for sev in (1, 2, 3):
            acc = base_acc - 0.08 * sev - 0.03 * i
            noise = rng.random(labels.size) < 0.05
            right = (hardness < acc) ^ noise
            out[name][sev] = np.where(right, labels, (labels + 1) % (labels.max() + 1))
    return out


def test_corruption_metrics_per_pair_and_means():
    rng = np.random.default_rng(5)
    labels, _, groups = structured(rng, rng.integers(10, 80, size=(4, 3)), np.full((4, 3), 0.9))
    preds = corrupted(rng, labels)
    out = corruption_metrics(labels, preds, groups, bootstrap=400, seed=3, null_draws=100)
    single = compute_metrics(labels, preds["fog"][2], groups, bootstrap=400, seed=3, null_draws=100)
    pair = out["corruptions"]["fog"]["2"]
    for name in ("accuracy", "macro_std", "macro_std_null", "macro_std_excess", "worst_cell_accuracy"):
        assert pair[name] == pytest.approx(getattr(single, name))  # same seed: same point values and floor
    # the joint resample's per-pair CI agrees (in distribution) with the pair's own bootstrap
    for name in ("accuracy", "macro_std"):
        width_joint = pair["ci95"][name][1] - pair["ci95"][name][0]
        width_single = single.ci95[name][1] - single.ci95[name][0]
        assert width_joint == pytest.approx(width_single, rel=0.2)
    flat = [preds[c][s] for c in PAIRS for s in (1, 2, 3)]
    assert out["accuracy"] == pytest.approx(np.mean([(p == labels).mean() for p in flat]))
    assert out["corruptions_mean"]["by_severity"]["3"]["accuracy"] == pytest.approx(
        np.mean([(preds[c][3] == labels).mean() for c in PAIRS]))
    assert out["corruptions_mean"]["all"]["n_pairs"] == 9 and out["corruptions_mean"]["paper18"] is None
    # the mean's CI: variance of a per-image score averaged over pairs, resampled within cells
    score = np.mean([p == labels for p in flat], axis=0)
    cell = labels * 3 + groups
    var = sum(((cell == c).sum() * score[cell == c].var()) for c in np.unique(cell)) / labels.size ** 2
    lo, hi = out["ci95"]["accuracy"]
    assert lo <= out["accuracy"] <= hi
    assert (hi - lo) / 2 == pytest.approx(1.96 * np.sqrt(var), rel=0.15)
    result = build_result(out, dataset="cifar10-c", n_images=labels.size, n_official=10_000, data_verified=False,
                          provenance={"model": "m", "model_sha256": None, "data_sha256": {}})
    validate_result(result)


def test_joint_bootstrap_of_identical_pairs_equals_the_single_pair():
    rng = np.random.default_rng(6)
    labels, preds, groups = structured(rng, np.array([[30, 12], [20, 25]]), np.array([[0.8, 0.6], [0.7, 0.9]]))
    out = corruption_metrics(labels, {"fog": {1: preds, 2: preds}}, groups, bootstrap=300, null_draws=50)
    # the bootstrap-based intervals agree; D's is the test inversion per pair but the basic interval of the
    # joint resample for the mean, and the Wilson-type intervals of a pair need its cells, not a resample
    for key in ("accuracy", "macro_std", "macro_std_excess"):
        assert out["ci95"][key] == out["corruptions"]["fog"]["1"]["ci95"][key]
    assert out["corruptions"]["fog"]["1"]["ci95"] == out["corruptions"]["fog"]["2"]["ci95"]
    assert out["corruptions"]["fog"]["1"]["p_subgroup_effect"] == out["corruptions"]["fog"]["2"]["p_subgroup_effect"]
    assert out["p_subgroup_effect"] is None and out["corruptions_mean"]["all"]["p_subgroup_effect"] is None
    single = compute_metrics(labels, preds, groups, bootstrap=300, null_draws=50)
    assert out["corruptions"]["fog"]["1"]["ci95"]["macro_std_debiased"] == list(single.ci95["macro_std_debiased"])
    assert out["corruptions"]["fog"]["1"]["p_subgroup_effect"] == single.p_subgroup_effect
    lo, hi = out["ci95"]["macro_std_debiased"]
    assert lo <= out["macro_std_debiased"] <= hi
    off = corruption_metrics(labels, {"fog": {1: preds}}, groups, bootstrap=0, null_draws=50)
    assert off["ci95"] is None and off["corruptions"]["fog"]["1"]["ci95"] is None
