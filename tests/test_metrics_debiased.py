"""The debiased MacroStd D, its unbiased variance term, its interval, and the within-class permutation test."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats

from cifarb.metrics import _engine as E
from cifarb.metrics import compute_metrics, metrics_from_counts


def arrays(spec):
    """labels, predictions, subgroups from {(class, subgroup): (images, correct)}."""
    labels, preds, groups = [], [], []
    for (c, g), (n, k) in spec.items():
        labels += [c] * n
        groups += [g] * n
        preds += [c] * k + [(c + 1) % 4] * (n - k)
    return np.array(labels), np.array(preds), np.array(groups)


# worked by hand in the comments of test_debiased_macro_std_by_hand
TINY = {(0, 0): (4, 3), (0, 1): (2, 1), (1, 0): (3, 3), (1, 1): (3, 0), (2, 0): (3, 0), (2, 1): (1, 1),
        (3, 0): (1, 1)}


def test_debiased_macro_std_by_hand():
    # class 0: a = (3/4, 1/2), w = (2/3, 1/3), m = 2/3, V = 1/72; v = (3/16 / 3, 1/4 / 1), B = 2/9 (1/16 + 1/4)
    #          = 5/72 > V, so the class contributes 0
    # class 1: a = (1, 0), w = (1/2, 1/2), V = 1/4, B = 0 (cells at 0 and 1 have no estimated noise): 1/2
    # class 2: a = (0, 1), w = (3/4, 1/4), m = 1/4, V = 3/16; the one-image cell's variance is
    #          m (1 - m) n_c / (n_c - 1) = 3/16 * 4/3 = 1/4, B = 3/4 * 1/4 * 1/4 = 3/64, V - B = 9/64: 3/8
    # class 3: one image, B = 0 and V = 0: 0
    labels, preds, groups = arrays(TINY)
    m = compute_metrics(labels, preds, groups, n_classes=4, n_subgroups=2, bootstrap=0)
    assert m.macro_std_debiased == pytest.approx((0 + 1 / 2 + 3 / 8 + 0) / 4)
    assert m.macro_std == pytest.approx((math.sqrt(1 / 72) + 1 / 2 + math.sqrt(3 / 16) + 0) / 4)
    var, noise, valid = E.debiased_terms(m.n, m.k)
    assert var == pytest.approx([1 / 72, 1 / 4, 3 / 16, 0]) and noise == pytest.approx([5 / 72, 0, 3 / 64, 0])
    # min_cell_size 2 drops class 2's one-image cell and all of class 3: (0 + 1/2 + 0) / 3
    m2 = compute_metrics(labels, preds, groups, n_classes=4, n_subgroups=2, bootstrap=0, min_cell_size=2)
    assert m2.macro_std_debiased == pytest.approx(1 / 6)
    assert m.to_dict()["macro_std_debiased"] == m.macro_std_debiased and m.p_subgroup_effect is None


def binom_pmf(n, k, p):
    return math.comb(n, k) * p ** k * (1 - p) ** (n - k)


def test_variance_minus_noise_is_unbiased_by_exact_enumeration():
    # two classes, every cell n >= 2; enumerate every table of correct counts with its probability
    n = np.array([[2, 3, 4], [5, 2, 2]])
    p = np.array([[0.2, 0.5, 0.9], [0.6, 0.95, 0.3]])
    tables = np.array(list(product(*[range(x + 1) for x in n.ravel()]))).reshape(-1, 2, 3)
    prob = np.prod([[binom_pmf(int(nn), int(kk), float(pp)) for nn, kk, pp in zip(n.ravel(), t.ravel(), p.ravel())]
                    for t in tables], axis=1)
    assert prob.sum() == pytest.approx(1.0)
    var, noise, _ = E.debiased_terms(n, tables)
    w = n / n.sum(axis=1, keepdims=True)
    mean = (w * p).sum(axis=1, keepdims=True)
    true_var = (w * (p - mean) ** 2).sum(axis=1)
    expected_bias = (w * (1 - w) * p * (1 - p) / n).sum(axis=1)
    assert prob @ (var - noise) == pytest.approx(true_var, abs=1e-12)
    assert prob @ var == pytest.approx(true_var + expected_bias, abs=1e-12)  # the plug-in's bias, for contrast
    assert np.all(expected_bias > 1e-3)


def test_signed_root_statistic_agrees_with_the_terms():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 30, size=(6, 5))
    n[0, 0] = 0
    k = rng.binomial(n, 0.7, size=(50, 6, 5))
    var, noise, valid = E.debiased_terms(n, k, 2)
    vu = (var - noise)[:, valid]
    assert E.signed_root_statistic(n, k, 2) == pytest.approx((np.sign(vu) * np.sqrt(np.abs(vu))).mean(axis=1),
                                                             abs=1e-8)
    assert E.macro_std_debiased(n, k, 2) == pytest.approx(np.sqrt(np.maximum(vu, 0)).mean(axis=1))


def hypergeom_tables(n_row, total):
    """Every split of `total` correct images over cells of sizes n_row, with its permutation probability."""
    out = []
    for ks in product(*[range(x + 1) for x in n_row]):
        if sum(ks) == total:
            out.append((ks, math.prod(math.comb(x, k) for x, k in zip(n_row, ks)) / math.comb(sum(n_row), total)))
    return out


def test_permutation_draws_follow_the_exact_within_class_null():
    n = np.array([[3, 2, 2], [2, 4, 1]])
    k = np.array([[2, 1, 0], [0, 2, 1]])
    draws = 20_000
    rng = np.random.default_rng(1)
    k_perm = np.stack([rng.multivariate_hypergeometric(n[c], int(k[c].sum()), size=draws) for c in range(2)], axis=1)
    # the engine draws the same way; check its statistics' distribution against the enumeration
    null = E.permutation_null(n, k, draws, np.random.default_rng(2))
    assert null.shape == (draws,)
    assert np.all(k_perm.sum(axis=2) == k.sum(axis=1)) and np.all(k_perm <= n)
    exact: dict[float, float] = {}
    for (k0, p0), (k1, p1) in product(hypergeom_tables(n[0], 3), hypergeom_tables(n[1], 3)):
        t = round(float(E.macro_std(n, np.array([k0, k1]))), 9)
        exact[t] = exact.get(t, 0.0) + p0 * p1
    values, counts = np.unique(np.round(null, 9), return_counts=True)
    assert set(values.tolist()) <= set(exact)
    for v, c in zip(values, counts):
        assert c / draws == pytest.approx(exact[float(v)], abs=4 * math.sqrt(exact[float(v)] / draws) + 1e-3)


def test_permutation_p_value_is_valid_on_an_exact_case_with_ties():
    # P(p <= alpha) = sum over observed tables t of P(t) P(1 + Bin(R, q_t) <= alpha (R + 1)), with q_t the
    # exact null probability of a statistic >= the observed one (the tie rule of permutation_p_value)
    n = np.array([[3, 2], [2, 2]])
    totals = (2, 2)
    tables = [(np.array([k0, k1]), p0 * p1) for (k0, p0), (k1, p1) in
              product(hypergeom_tables(n[0], totals[0]), hypergeom_tables(n[1], totals[1]))]
    stat = np.array([float(E.macro_std(n, t)) for t, _ in tables])
    prob = np.array([p for _, p in tables])
    assert len(set(np.round(stat, 9))) < stat.size  # the case has ties
    q = np.array([prob[stat >= s - 1e-10].sum() for s in stat])
    for R in (19, 99):
        for j in range(1, R + 2):  # every attainable level alpha = j / (R + 1)
            alpha = j / (R + 1)
            level = float(prob @ stats.binom.cdf(j - 1, R, q))  # p <= alpha  <=>  #{>=} <= j - 1
            assert level <= alpha + 1e-12, (R, alpha, level)
    # the implementation's p-value is that formula: ties count, and the observed value is one of R + 1
    null = np.array([0.1, 0.2, 0.2 + 1e-15, 0.3])
    assert E.permutation_p_value(0.2 + 1e-15, null) == pytest.approx(4 / 5)
    assert E.permutation_p_value(0.31, null) == pytest.approx(1 / 5)


def test_permutation_p_value_is_close_to_alpha_without_ties():
    # continuous-ish statistic: many classes, cells of unequal sizes, no subgroup effect (p = m_c)
    rng = np.random.default_rng(3)
    n = rng.integers(15, 60, size=(8, 5))
    p_class = rng.uniform(0.6, 0.95, size=(8, 1))
    pvals = []
    for _ in range(400):
        k = rng.binomial(n, np.broadcast_to(p_class, n.shape))
        null = E.permutation_null(n, k, 99, rng)
        pvals.append(E.permutation_p_value(float(E.macro_std(n, k)), null))
    pvals = np.array(pvals)
    for alpha in (0.05, 0.1, 0.2, 0.5):
        assert abs(np.mean(pvals <= alpha) - alpha) < 3.5 * math.sqrt(alpha * (1 - alpha) / pvals.size) + 0.01


def test_compute_metrics_reports_the_test_and_the_interval():
    rng = np.random.default_rng(4)
    n = rng.integers(20, 120, size=(5, 4))
    effect = np.array([0.0, -0.25, 0.05, -0.1])
    k = rng.binomial(n, np.clip(0.85 + effect, 0, 1)[None, :].repeat(5, 0))
    m = metrics_from_counts(n, k, bootstrap=200, seed=1, permutations=199)
    assert m.p_subgroup_effect == pytest.approx(1 / 200)  # a strong effect: nothing permuted comes close
    lo, hi = m.ci95["macro_std_debiased"]
    assert 0 < lo <= m.macro_std_debiased <= hi <= 1
    again = metrics_from_counts(n, k, bootstrap=200, seed=1, permutations=199)
    assert again.ci95["macro_std_debiased"] == m.ci95["macro_std_debiased"]  # seeded
    assert again.p_subgroup_effect == m.p_subgroup_effect
    off = metrics_from_counts(n, k, bootstrap=200, seed=1, permutations=0)
    assert off.p_subgroup_effect is None and off.settings["permutations"] == 0
    assert off.ci95["macro_std_debiased"] == m.ci95["macro_std_debiased"]
    # no effect at all (every cell of a class at its class accuracy): D's interval reaches 0
    flat = np.round(n * 0.8).astype(np.int64)
    m0 = metrics_from_counts(n, flat, bootstrap=100, seed=0)
    assert m0.ci95["macro_std_debiased"][0] == 0.0 and m0.p_subgroup_effect > 0.5


def test_edge_cases_cells_at_zero_and_one_and_single_images():
    n = np.array([[1, 0, 0], [2, 1, 0], [5, 5, 1], [0, 0, 0]])
    k = np.array([[1, 0, 0], [0, 1, 0], [5, 0, 1], [0, 0, 0]])
    m = metrics_from_counts(n, k, bootstrap=50, permutations=49)
    d = m.to_dict()
    assert d["macro_std_debiased"] is not None and 0 <= d["macro_std_debiased"] <= d["macro_std"]
    lo, hi = d["ci95"]["macro_std_debiased"]
    assert 0 <= lo <= d["macro_std_debiased"] <= hi <= 1
    assert 0 < d["p_subgroup_effect"] <= 1
