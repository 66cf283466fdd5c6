"""Paired stratified bootstrap of two prediction sets on the same images: CIs of metric differences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cifarb.metrics import _engine as E
from cifarb.metrics._engine import MetricsInputError
from cifarb.metrics.core import (
    CI_METRICS,
    _check_settings,
    _num,
    inference_seed_sequences,
    prepare_arrays,
    seed_sequences,
)
from cifarb.metrics.frame import PairedComparison


def paired_bootstrap(labels: Any, pred_a: Any, pred_b: Any, subgroups: Any | None, *,
                     n_classes: int | None = None, n_subgroups: int | None = None,
                     class_names: Sequence[str] | None = None, subgroup_names: Sequence[str] | None = None,
                     bootstrap: int = 1000, seed: int = 0, min_cell_size: int = 1,
                     min_cell_size_worst: int = 10, null_draws: int = 1000) -> PairedComparison:
    """Compare A and B on the same images: {metric: {"a", "b", "diff", "ci95"}} with diff = a - b.

    Each replicate resamples the images once (within each (class, subgroup) cell) and evaluates both
    prediction sets on that one resample, so the CI of the difference accounts for the images the two
    share. `ci95` is the percentile 95 % interval of the resampled differences, except for
    `macro_std_debiased` (ΔD): [lo_A - hi_B, hi_A - lo_B] from each model's own test-inversion
    interval for D (the `ci95` that `compute_metrics` reports for it with the same seed), which
    contains ΔD (None when `bootstrap` is 0 or the metric is undefined). A bootstrap cannot give ΔD's
    interval: D's bias depends on each model's accuracy and true spread, which the resample does not
    reproduce. Measured coverage in docs/bench/calibration.md. Metrics: the contract scalars with a CI. With
    `subgroups=None` only accuracy is compared (stratified by class). Returns a read-only
    `PairedComparison` (that Mapping, plus `to_dict()`, `to_frame()` and per-class/subgroup views).
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

    diffs: dict[str, list[np.ndarray]] = {name: [] for name in names if name != "macro_std_debiased"}
    if bootstrap > 0:
        for size in E.chunk_sizes(int(bootstrap), n.size):
            ra, rb = E.paired_resample_counts(n, k11, k10, k01, size, boot_rng)
            ma, mb = E.scalar_metrics(n, ra, **opts), E.scalar_metrics(n, rb, **opts)
            ma["macro_std_excess"], mb["macro_std_excess"] = ma["macro_std"] - null_a, mb["macro_std"] - null_b
            for name in diffs:
                diffs[name].append(ma[name] - mb[name])

    out: dict[str, dict[str, Any]] = {}
    for name in names:
        va, vb = _num(pa[name]), _num(pb[name])
        diff = None if va is None or vb is None else va - vb
        ci = None
        if bootstrap > 0 and diff is not None:
            if name == "macro_std_debiased":
                # when both D intervals hold their truth (>= 90 % of test sets for two 95 % ones, Bonferroni)
                # the difference interval holds ΔD's; it ignores the shared images, so it is wide
                if not (k10.any() or k01.any()):
                    lo = hi = 0.0  # right and wrong on the same images: one model, nothing to compare
                else:
                    (lo_a, hi_a), (lo_b, hi_b) = (_debiased_ci(n, k, int(min_cell_size), seed) for k in (k_a, k_b))
                    lo, hi = lo_a - hi_b, hi_a - lo_b
            else:
                lo, hi = E.percentile_ci(np.concatenate(diffs[name]))
            ci = [float(lo), float(hi)]
        out[name] = {"a": va, "b": vb, "diff": diff, "ci95": ci}
    return PairedComparison(out, n=n, k_a=k_a, k_b=k_b, class_names=cnames, subgroup_names=gnames)


def _debiased_ci(n: np.ndarray, k: np.ndarray, min_cell_size: int, seed: int) -> tuple[float, float]:
    """One model's D interval exactly as `compute_metrics` computes it (same seed stream, same clip)."""
    lo, hi = E.debiased_interval(n, k, min_cell_size=min_cell_size, rng_seed=inference_seed_sequences(seed)[1])
    return max(lo, 0.0), min(hi, 1.0)
