"""Paired stratified bootstrap of two prediction sets on the same images: CIs of metric differences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cifarb.metrics import _engine as E
from cifarb.metrics._engine import MetricsInputError
from cifarb.metrics.core import CI_METRICS, _check_settings, _num, prepare_arrays, seed_sequences


def paired_bootstrap(labels: Any, pred_a: Any, pred_b: Any, subgroups: Any | None, *,
                     n_classes: int | None = None, n_subgroups: int | None = None,
                     class_names: Sequence[str] | None = None, subgroup_names: Sequence[str] | None = None,
                     bootstrap: int = 1000, seed: int = 0, min_cell_size: int = 1,
                     min_cell_size_worst: int = 10, null_draws: int = 1000) -> dict[str, dict[str, Any]]:
    """Compare A and B on the same images: {metric: {"a", "b", "diff", "ci95"}} with diff = a - b.

    Each replicate resamples the images once (within each (class, subgroup) cell) and evaluates both
    prediction sets on that one resample, so the CI of the difference accounts for the images the two
    share. `ci95` is the percentile 95 % interval of the resampled differences, except for
    `macro_std_debiased` (ΔD), which gets the basic interval [2Δ - q97.5, 2Δ - q2.5], widened to
    contain Δ (None when `bootstrap` is 0 or the metric is undefined). Its measured coverage is in
    docs/bench/calibration.md. Metrics: the contract scalars with a CI. With
    `subgroups=None` only accuracy is compared (stratified by class).
    """
    _check_settings(bootstrap, seed, min_cell_size, min_cell_size_worst, null_draws)
    y, a, g, cnames, gnames = prepare_arrays(labels, pred_a, subgroups, n_classes=n_classes,
                                             n_subgroups=n_subgroups, class_names=class_names,
                                             subgroup_names=subgroup_names)
    b = E.as_index_array(pred_b, "pred_b")
    if b.shape != y.shape:
        raise MetricsInputError(f"pred_b has {b.size} entries but labels has {y.size}; give one per sample")
    if b.max() >= len(cnames):
        raise MetricsInputError(f"pred_b contains class {int(b.max())} but there are only {len(cnames)} classes")
    C, G = len(cnames), len(gnames)
    ca, cb = y == a, y == b
    n, k_a = E.cell_counts(y, ca, g, C, G)
    _, k_b = E.cell_counts(y, cb, g, C, G)
    _, k11 = E.cell_counts(y, ca & cb, g, C, G)
    k10, k01 = k_a - k11, k_b - k11

    names = CI_METRICS if subgroups is not None else ("accuracy",)
    opts = {"min_cell_size": int(min_cell_size), "min_cell_size_worst": int(min_cell_size_worst)}
    boot_seed, null_seed = seed_sequences(seed)
    boot_rng = np.random.default_rng(boot_seed)
    # both floors use the same stream as compute_metrics, so each side's floor equals its own result's
    null_a = E.macro_std_null(n, k_a, min_cell_size=int(min_cell_size), draws=int(null_draws),
                              rng=np.random.default_rng(null_seed))
    null_b = E.macro_std_null(n, k_b, min_cell_size=int(min_cell_size), draws=int(null_draws),
                              rng=np.random.default_rng(null_seed))
    pa, pb = E.scalar_metrics(n, k_a, **opts), E.scalar_metrics(n, k_b, **opts)
    pa["macro_std_excess"], pb["macro_std_excess"] = pa["macro_std"] - null_a, pb["macro_std"] - null_b

    diffs: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if bootstrap > 0:
        for size in E.chunk_sizes(int(bootstrap), n.size):
            ra, rb = E.paired_resample_counts(n, k11, k10, k01, size, boot_rng)
            ma, mb = E.scalar_metrics(n, ra, **opts), E.scalar_metrics(n, rb, **opts)
            ma["macro_std_excess"], mb["macro_std_excess"] = ma["macro_std"] - null_a, mb["macro_std"] - null_b
            for name in names:
                diffs[name].append(ma[name] - mb[name])

    out: dict[str, dict[str, Any]] = {}
    for name in names:
        va, vb = _num(pa[name]), _num(pb[name])
        diff = None if va is None or vb is None else va - vb
        ci = None
        if bootstrap > 0 and diff is not None:
            if name == "macro_std_debiased":
                # each side's bootstrap D carries the bias D carries: the basic interval cancels it
                lo, hi = E.basic_ci(np.concatenate(diffs[name]), diff)
                lo, hi = min(max(lo, -1.0), diff), max(min(hi, 1.0), diff)  # contains the estimate
            else:
                lo, hi = E.percentile_ci(np.concatenate(diffs[name]))
            ci = [float(lo), float(hi)]
        out[name] = {"a": va, "b": vb, "diff": diff, "ci95": ci}
    return out
