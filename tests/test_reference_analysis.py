"""Correlations over models (Pearson, Spearman, partial) and the accuracy-adjusted discrepancy, against
independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cifarb.cli import main
from cifarb.reference.analysis import adjusted_discrepancy, analyse, correlation, fit_trend


@pytest.fixture
def xyz():
    rng = np.random.default_rng(0)
    z = rng.normal(size=25)
    x = 0.8 * z + rng.normal(scale=0.5, size=25)
    y = -0.6 * z + 0.3 * x + rng.normal(scale=0.5, size=25)
    return x, y, z


def _residual(a, z):
    design = np.column_stack([np.ones_like(z), z])
    return a - design @ np.linalg.lstsq(design, a, rcond=None)[0]


def test_pearson_spearman_and_partial_match_independent_computations(xyz):
    x, y, z = xyz
    assert correlation("pearson", (x, y))["r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert correlation("spearman", (x, y))["r"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    # partial correlation = correlation of the residuals after regressing both on z
    expect = np.corrcoef(_residual(x, z), _residual(y, z))[0, 1]
    assert correlation("partial_pearson", (x, y, z))["r"] == pytest.approx(expect, abs=1e-12)
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    expect = np.corrcoef(_residual(rx, rz), _residual(ry, rz))[0, 1]
    assert correlation("partial_spearman", (x, y, z))["r"] == pytest.approx(expect, abs=1e-12)


def test_bootstrap_interval_over_models(xyz):
    x, y, _ = xyz
    a = correlation("pearson", (x, y), bootstrap=500, seed=1)
    assert a == correlation("pearson", (x, y), bootstrap=500, seed=1)  # reproducible
    assert a["n"] == 25 and a["ci95"][0] <= a["r"] <= a["ci95"][1]
    # an independent percentile bootstrap of the same statistic lands close (Monte Carlo tolerance)
    rng = np.random.default_rng(7)
    pick = rng.integers(0, 25, size=(4000, 25))
    boot = [np.corrcoef(x[p], y[p])[0, 1] for p in pick]
    assert a["ci95"] == pytest.approx(list(np.quantile(boot, [0.025, 0.975])), abs=0.06)
    assert correlation("pearson", (x, y), bootstrap=0)["ci95"] is None
    assert correlation("pearson", (x, np.ones(25)))["r"] is None  # constant: undefined, not NaN


def test_adjusted_discrepancy_removes_the_accuracy_trend():
    acc = np.linspace(0.8, 0.97, 12)
    alpha, beta = -0.01, 0.14
    rows = [{"name": f"m{i}", "added": False, "accuracy": float(a), "discrepancy": float(alpha + beta * np.sqrt(1 - a))}
            for i, a in enumerate(acc)]
    rows.append({"name": "mine", "added": True, "accuracy": 0.9, "discrepancy": 0.5})  # far off, not in the fit
    fit = adjusted_discrepancy(rows)
    assert (fit["alpha"], fit["beta"]) == pytest.approx((alpha, beta), abs=1e-12)
    assert all(abs(r["macro_std_adjusted"]) < 1e-12 for r in rows[:-1])
    assert rows[-1]["macro_std_adjusted"] == pytest.approx(0.5 - (alpha + beta * np.sqrt(0.1)), abs=1e-12)
    # against numpy's polynomial fit on sqrt(error), with noise
    rng = np.random.default_rng(2)
    d = alpha + beta * np.sqrt(1 - acc) + rng.normal(scale=0.002, size=acc.size)
    slope, intercept = np.polyfit(np.sqrt(1 - acc), d, 1)
    assert fit_trend(acc, d) == pytest.approx((intercept, slope), abs=1e-10)
    assert adjusted_discrepancy(rows[:2]) is None and rows[0]["macro_std_adjusted"] is None


def test_analyse_names_and_rows_with_missing_values():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(10):
        a = 0.85 + 0.01 * i
        rows.append({"name": f"m{i}", "added": False, "accuracy": a, "macro_std": 0.2 - 0.15 * a + rng.normal(0, 1e-3),
                     "macro_std_excess": rng.normal(0.01, 1e-3), "macro_std_debiased": None,
                     "macro_std_adjusted": rng.normal(0, 1e-3), "cifar10_1_v6_accuracy": a - 0.07,
                     "cifar10_1_v4_accuracy": a - 0.08 + rng.normal(0, 1e-3), "drop_v6": 0.07, "drop_v4": None})
    out, info = analyse(rows, bootstrap=50, seed=0)
    assert "pearson__macro_std__cifar10_1_v6_accuracy" in out
    assert "partial_pearson__macro_std__cifar10_1_v4_accuracy__given__accuracy" in out
    assert not any("debiased" in k for k in out) and not any("drop_v4" in k for k in out)
    assert out["pearson__accuracy__drop_v6"]["r"] is None  # constant drop
    assert info["resampling"] == "models, with replacement" and info["n_rows"] == 10


def test_cli_analysis_prints_partial_correlations(capsys):
    assert main(["reference", "--bootstrap", "0", "--analysis", "--analysis-bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "MacroStd vs CIFAR-10.1 v6 accuracy | CIFAR-10 accuracy (partial)" in out
    assert "MacroStd vs CIFAR-10 accuracy" in out and "(n=30)" in out


def test_small_samples_and_bounds():
    x, y, z = np.array([1.0, 2.0, 3.0]), np.array([2.0, 1.0, 4.0]), np.array([0.0, 1.0, 3.0])
    assert correlation("partial_pearson", (x, y, z))["r"] is None  # 3 points: always +-1, so undefined
    assert correlation("pearson", (x, 2 * x + 1))["r"] == 1.0  # exactly collinear stays in [-1, 1]
    assert correlation("pearson", (x, y), bootstrap=100)["ci95"] is None  # too few models to resample
