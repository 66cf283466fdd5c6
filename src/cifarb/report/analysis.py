"""Across-run rank correlation (Spearman) of clean metrics with robustness, with a run-level bootstrap CI."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from cifarb.report.load import Run
from cifarb.report.tables import BY_KEY, run_values

# (x, y) pairs the report analyses: does a clean metric rank runs the way robustness does?
PAIRS: tuple[tuple[str, str], ...] = (
    ("macro_std", "c_accuracy"),
    ("macro_std_excess", "c_accuracy"),
    ("accuracy", "c_accuracy"),
    ("macro_std", "c101_accuracy"),
    ("macro_std_excess", "c101_accuracy"),
    ("accuracy", "c101_accuracy"),
)
MIN_RUNS_FOR_CI = 4


@dataclass
class Correlation:
    x: str
    y: str
    n: int  # runs with both values
    rho: float | None
    p_value: float | None
    ci95: tuple[float, float] | None
    n_boot_valid: int  # resamples where both sides varied (others have no defined rank correlation)
    rho_critical: float | None  # |rho| a two-sided test at 5 % needs with n runs
    note: str = ""


def _rank_rows(a: np.ndarray) -> np.ndarray:
    return stats.rankdata(a, axis=1, method="average")


def spearman_bootstrap(x: Sequence[float], y: Sequence[float], bootstrap: int = 2000, seed: int = 0
                       ) -> tuple[float | None, tuple[float, float] | None, int]:
    """Spearman rho of (x, y) and its percentile 95 % CI from resampling the pairs (runs) with replacement.

    Resamples in which x or y is constant have no rank correlation and are dropped; how many were kept
    is returned. Returns (rho, ci, n_valid).
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = xa.size
    if n < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return None, None, 0
    rho = float(stats.spearmanr(xa, ya).statistic)
    if bootstrap <= 0:
        return rho, None, 0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(bootstrap, n))
    rx, ry = _rank_rows(xa[idx]), _rank_rows(ya[idx])
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    ok = den > 0
    r = (rx * ry).sum(axis=1)[ok] / den[ok]
    if r.size < 0.5 * bootstrap:  # most resamples degenerate: a CI from the rest would mislead
        return rho, None, int(r.size)
    lo, hi = np.percentile(r, [2.5, 97.5])
    return rho, (float(lo), float(hi)), int(r.size)


def critical_rho(n: int, alpha: float = 0.05) -> float | None:
    """|rho| needed for two-sided significance at `alpha` with n runs (t approximation, as scipy's p-value)."""
    if n < 4:
        return None
    t = stats.t.ppf(1 - alpha / 2, n - 2)
    return float(t / math.sqrt(n - 2 + t * t))


def correlations(runs: Sequence[Run], pairs: Sequence[tuple[str, str]] = PAIRS, bootstrap: int = 2000,
                 seed: int = 0) -> list[Correlation]:
    """Each (x, y) pair over the runs that have both values; pairs no run has are left out."""
    values = [run_values(r) for r in runs]
    out = []
    for x, y in pairs:
        both = [(v[x], v[y]) for v in values if v[x] is not None and v[y] is not None]
        if not both:
            continue
        xs, ys = [b[0] for b in both], [b[1] for b in both]
        n = len(both)
        rho, ci, valid = spearman_bootstrap(xs, ys, bootstrap=bootstrap, seed=seed) if n >= 3 else (None, None, 0)
        p = None
        note = ""
        if n < 3:
            note = f"only {n} run(s): no rank correlation"
        elif rho is None:
            note = "one side is constant across runs: no rank correlation"
        else:
            p = float(stats.spearmanr(xs, ys).pvalue)
            if n < MIN_RUNS_FOR_CI:
                ci, note = None, f"only {n} runs: too few to bootstrap"
            elif ci is None:
                note = "most bootstrap resamples were degenerate: no CI"
        out.append(Correlation(x, y, n, rho, p, ci, valid, critical_rho(n), note))
    return out


def label(key: str) -> str:
    """Readable metric name for analysis tables ("clean MacroStd", "-C accuracy", ...)."""
    names = {
        "accuracy": "clean accuracy",
        "macro_std": "clean MacroStd",
        "macro_std_excess": "clean macro_std_excess",
        "c_accuracy": "-C accuracy",
        "c101_accuracy": "CIFAR-10.1 accuracy",
    }
    return names.get(key, BY_KEY[key].label if key in BY_KEY else key)
