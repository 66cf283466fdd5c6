"""The closed-form intervals (Wilson, min-of-Wilson, Newcombe gap, normal mean cell, re-centred percentile)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from cifarb.metrics import _engine as E
from cifarb.metrics import compute_metrics, metrics_from_counts
from test_metrics_core import datasets

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_wilson_matches_scipy():
    for k, n in ((0, 5), (3, 7), (7, 7), (45, 50), (1, 1)):
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = E.wilson(np.array(k), np.array(n))
        assert (float(lo), float(hi)) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, table II example (b): 56/70 - 48/80, method 10
    lo, hi = E.newcombe(np.array([56]), np.array([70]), np.array([48]), np.array([80]), E.Z95)
    assert (float(lo[0]), float(hi[0])) == pytest.approx((0.0524, 0.3339), abs=5e-5)


def test_min_of_wilson_and_gap_by_hand():
    k, n = np.array([8, 45, 30]), np.array([10, 50, 40])
    lo, hi = E.min_of_wilson(k, n)
    z3 = stats.norm.ppf(1 - 0.025 / 3)
    wil = [stats.binomtest(int(a), int(b)).proportion_ci(method="wilson") for a, b in zip(k, n)]
    # the upper end needs every proportion's bound at the union-bound z
    wil_u = []
    for a, b in zip(k, n):
        p = a / b
        c = (p + z3 ** 2 / (2 * b)) / (1 + z3 ** 2 / b)
        h = z3 * np.sqrt(p * (1 - p) / b + z3 ** 2 / (4 * b * b)) / (1 + z3 ** 2 / b)
        wil_u.append(c + h)
    assert lo == pytest.approx(min(w.low for w in wil)) and hi == pytest.approx(min(wil_u))
    assert lo <= (k / n).min() <= hi
    glo, ghi = E.gap_interval(k, n)
    gap = (k / n).max() - (k / n).min()
    assert 0 <= glo <= gap <= ghi <= 1
    # two subgroups: the gap is |p1 - p2|, lower end from Newcombe at the union-bound z for 2 ordered pairs
    l2, u2 = E.newcombe(k[1:2], n[1:2], k[2:3], n[2:3], stats.norm.ppf(1 - 0.025 / 2))
    l1, u1 = E.newcombe(k[1:2], n[1:2], k[2:3], n[2:3], E.Z95)
    assert E.gap_interval(k[1:], n[1:]) == pytest.approx((max(0.0, float(l2[0])), float(u1[0])))
    assert E.gap_interval(k[:1], n[:1]) == (0.0, 0.0)


def test_mean_cell_interval_by_hand():
    n = np.array([[10, 1], [4, 0]])
    k = np.array([[7, 1], [2, 0]])
    # cells: 0.7 (n 10), 1.0 (n 1: its class's m (1 - m) = 8/11 * 3/11), 0.5 (n 4)
    v = 0.7 * 0.3 / 9 + (8 / 11) * (3 / 11) + 0.25 / 3
    est = (0.7 + 1.0 + 0.5) / 3
    lo, hi = E.mean_cell_interval(n, k)
    assert (lo, hi) == pytest.approx((est - 1.959964 * np.sqrt(v) / 3, min(1.0, est + 1.959964 * np.sqrt(v) / 3)))


def test_recentred_percentile():
    samples = np.linspace(0.2, 0.4, 1001)  # mean 0.3
    lo, hi = E.recentred_ci(samples, 0.25, 0.0, 1.0)
    assert (lo, hi) == pytest.approx((0.205 - 0.05, 0.395 - 0.05))
    assert E.recentred_ci(samples, 0.01, 0.0, 1.0)[0] == 0.0  # clipped
    lo, hi = E.recentred_ci(np.full(10, 0.5), 0.1, 0.0, 1.0)
    assert lo <= 0.1 <= hi


@FAST
@given(datasets(max_n=120), st.integers(0, 2**16))
def test_every_interval_contains_its_estimate_and_is_clipped(data, seed):
    labels, preds, groups, n_classes, n_groups = data
    m = compute_metrics(labels, preds, groups, n_classes=n_classes, n_subgroups=n_groups, bootstrap=100, seed=seed,
                        null_draws=20, min_cell_size_worst=3, permutations=19)
    for name, interval in m.ci95.items():
        value = getattr(m, name)
        if value is None:
            assert interval is None, name
            continue
        lo, hi = interval
        lower = -1.0 if name == "macro_std_excess" else 0.0
        assert lower <= lo <= value <= hi <= 1.0, (name, lo, value, hi)
    for ci_map, values in ((m.class_accuracy_ci95, m.class_accuracy), (m.subgroup_accuracy_ci95, m.subgroup_accuracy)):
        for key, value in values.items():
            if value is None:
                assert ci_map[key] is None
            else:
                assert 0.0 <= ci_map[key][0] <= value <= ci_map[key][1] <= 1.0
    present = m.n > 0
    a = m.k[present] / m.n[present]
    assert np.all(m.cell_ci95[0][present] <= a + 1e-12) and np.all(a <= m.cell_ci95[1][present] + 1e-12)


def test_intervals_on_cells_at_zero_and_one():
    n = np.array([[12, 12, 1], [15, 11, 0]])
    k = np.array([[0, 12, 1], [15, 0, 0]])
    m = metrics_from_counts(n, k, bootstrap=50, permutations=19)
    assert m.worst_cell_accuracy == 0.0 and m.ci95["worst_cell_accuracy"][0] == 0.0
    assert m.ci95["worst_cell_accuracy"][1] > 0  # Wilson: not a degenerate [0, 0]
    for interval in m.ci95.values():
        assert interval is not None and interval[0] <= interval[1]
    assert m.class_accuracy_ci95["1"][0] > 0.3 and m.class_accuracy_ci95["1"][1] < 0.8
