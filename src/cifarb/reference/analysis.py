"""Correlations over models (Pearson, Spearman, partial given accuracy) with bootstrap CIs, and the
accuracy-adjusted discrepancy.

The accuracy-adjusted discrepancy of a model is its discrepancy estimate d minus the trend that the
reference models' accuracy alone predicts: d_adj = d - (alpha + beta * sqrt(1 - accuracy)), with alpha
and beta fitted by least squares over the reference models scored on the same images (added models
are not in the fit). sqrt(error) is the scale on which binomial cell noise grows, and it fits the 30
reference models better than a straight line in accuracy (docs/metrics.md). d_adj < 0 reads "less
discrepancy than models of its accuracy", at equal accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MEASURES: tuple[str, ...] = ("accuracy", "macro_std", "macro_std_excess", "macro_std_debiased",
                             "macro_std_adjusted")
DISCREPANCIES: tuple[str, ...] = ("macro_std", "macro_std_excess", "macro_std_debiased", "macro_std_adjusted")
TARGETS: tuple[str, ...] = ("cifar10_1_v6_accuracy", "cifar10_1_v4_accuracy", "drop_v6", "drop_v4")
PARTIAL_TARGETS: tuple[str, ...] = ("cifar10_1_v6_accuracy", "cifar10_1_v4_accuracy")
CONTROL = "accuracy"


def fit_trend(accuracy: np.ndarray, discrepancy: np.ndarray) -> tuple[float, float]:
    """(alpha, beta) of the least-squares fit discrepancy ~ alpha + beta * sqrt(1 - accuracy)."""
    x = np.sqrt(np.clip(1.0 - np.asarray(accuracy, dtype=np.float64), 0.0, None))
    design = np.column_stack([np.ones_like(x), x])
    (alpha, beta), *_ = np.linalg.lstsq(design, np.asarray(discrepancy, dtype=np.float64), rcond=None)
    return float(alpha), float(beta)


def adjusted_discrepancy(rows: list[dict[str, Any]], key: str = "discrepancy") -> dict[str, Any] | None:
    """Set row["macro_std_adjusted"] = row[key] minus the reference models' sqrt-error trend; the fit.

    Needs at least three reference rows with a value; otherwise every row gets None.
    """
    ref = [r for r in rows if not r["added"] and r.get(key) is not None and r.get("accuracy") is not None]
    for r in rows:
        r["macro_std_adjusted"] = None
    if len(ref) < 3:
        return None
    alpha, beta = fit_trend(np.array([r["accuracy"] for r in ref]), np.array([r[key] for r in ref]))
    for r in rows:
        if r.get(key) is not None and r.get("accuracy") is not None:
            r["macro_std_adjusted"] = float(r[key] - (alpha + beta * np.sqrt(max(1.0 - r["accuracy"], 0.0))))
    return {"of": key, "alpha": alpha, "beta": beta, "n_models": len(ref),
            "form": "discrepancy - (alpha + beta * sqrt(1 - accuracy)), fitted over the reference models"}


def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank, as Spearman's rho needs)."""
    from scipy.stats import rankdata

    return rankdata(a, axis=-1, method="average")


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis; NaN where either side is constant."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=-1) * (yc * yc).sum(axis=-1))
    # a constant column (max == min) has no correlation; its centred values are rounding noise, not 0
    ok = (np.ptp(x, axis=-1) > 0) & (np.ptp(y, axis=-1) > 0) & (den > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, (xc * yc).sum(axis=-1) / np.where(ok, den, 1.0), np.nan)


def _partial_rows(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """r(x, y | z) from the three pairwise correlations; NaN when undefined."""
    rxy, rxz, ryz = _pearson_rows(x, y), _pearson_rows(x, z), _pearson_rows(y, z)
    den = np.sqrt(np.clip((1 - rxz**2) * (1 - ryz**2), 0.0, None))  # rounding can leave r^2 a hair above 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, (rxy - rxz * ryz) / np.where(den > 1e-12, den, 1.0), np.nan)


def _stat(kind: str, cols: Sequence[np.ndarray]) -> np.ndarray:
    if kind.startswith("spearman") or kind == "partial_spearman":
        cols = [_rank_rows(c) for c in cols]
    r = _partial_rows(*cols) if kind.startswith("partial") else _pearson_rows(*cols)
    return np.clip(r, -1.0, 1.0)  # rounding can land a hair outside [-1, 1]


def correlation(kind: str, columns: Sequence[Sequence[float]], *, bootstrap: int = 2000,
                seed: int = 0) -> dict[str, Any]:
    """{"r", "ci95", "n"}: `kind` in pearson | spearman | partial_pearson | partial_spearman over models.

    `columns` are (x, y) or, for partial kinds, (x, y, z) with one value per model. The CI is the
    percentile 95 % interval of the statistic over `bootstrap` resamples of the models (with
    replacement); resamples where it is undefined (a constant column) are left out.
    """
    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    n = int(cols[0].size)
    # a partial correlation of 3 points is always +-1: it needs one more point than a plain one
    r = float(_stat(kind, cols)) if n >= (4 if kind.startswith("partial") else 3) else float("nan")
    ci = None
    if bootstrap > 0 and n >= 5 and np.isfinite(r):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), n]))
        pick = rng.integers(0, n, size=(int(bootstrap), n))
        boot = _stat(kind, [c[pick] for c in cols])
        boot = boot[np.isfinite(boot)]
        if boot.size:
            lo, hi = np.quantile(boot, [0.025, 0.975])
            ci = [float(lo), float(hi)]
    return {"r": None if not np.isfinite(r) else r, "ci95": ci, "n": n}


def _complete(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[np.ndarray] | None:
    use = [r for r in rows if all(r.get(k) is not None for k in keys)]
    if len(use) < 3:
        return None
    return [np.array([r[k] for r in use], dtype=np.float64) for k in keys]


def analyse(rows: list[dict[str, Any]], *, bootstrap: int = 2000, seed: int = 0
            ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(correlations by name, how they were computed) over every row that has the values involved.

    Names: `pearson__X__Y`, `spearman__X__Y` for X in MEASURES and Y in TARGETS, `pearson__X__accuracy`
    for each discrepancy X, and `partial_pearson__X__Y__given__accuracy` / `partial_spearman__...` for X
    in DISCREPANCIES and Y in PARTIAL_TARGETS.
    """
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, kind: str, keys: Sequence[str]) -> None:
        cols = _complete(rows, keys)
        if cols is not None:
            out[name] = correlation(kind, cols, bootstrap=bootstrap, seed=seed)

    for kind in ("pearson", "spearman"):
        for x in MEASURES:
            for y in TARGETS:
                add(f"{kind}__{x}__{y}", kind, (x, y))
        for x in DISCREPANCIES:
            add(f"{kind}__{x}__accuracy", kind, (x, CONTROL))
    for kind in ("partial_pearson", "partial_spearman"):
        for x in DISCREPANCIES:
            for y in PARTIAL_TARGETS:
                add(f"{kind}__{x}__{y}__given__{CONTROL}", kind, (x, y, CONTROL))
    info = {"bootstrap": int(bootstrap), "seed": int(seed), "resampling": "models, with replacement",
            "ci": "percentile 95 %", "n_rows": len(rows)}
    return out, info
