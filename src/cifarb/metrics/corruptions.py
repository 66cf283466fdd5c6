"""Metrics over corruption x severity pairs of the same images, with CIs from one joint image resample."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cifarb.metrics import _engine as E
from cifarb.metrics.core import (
    PERMUTATIONS,
    SubgroupMetrics,
    _check_settings,
    intervals_from_samples,
    metrics_from_counts,
    prepare_arrays,
    seed_sequences,
    with_intervals,
)
from cifarb.metrics.frame import CorruptionMetrics
from cifarb.metrics.result import PAPER18, combine_corruptions, normalise_pairs


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread while it multiplies many small per-cell matrices.

    Threaded OpenBLAS on such small products is many times slower than one thread when cores are
    shared (measured here: 9 s vs 0.3 s). threadpoolctl is optional; without it nothing changes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _joint_replicates(y: np.ndarray, g: np.ndarray, correct: np.ndarray, n_classes: int, n_subgroups: int,
                      bootstrap: int, rng: np.random.Generator, progress: bool):
    """Yield (size, P, C, G) correct counts: each replicate resamples every cell's images once, jointly
    for all P prediction sets (the images are shared, so their errors are correlated across sets)."""
    cell = y * n_subgroups + g
    order = np.argsort(cell, kind="stable")
    sorted_cells = cell[order]
    x = correct[order].astype(np.float32)  # (N, P), images grouped by cell
    n_img, n_sets = x.shape
    ids, starts, sizes = np.unique(sorted_cells, return_index=True, return_counts=True)
    slot_start = np.repeat(starts, sizes)  # for each slot: its cell's first position and size
    slot_size = np.repeat(sizes, sizes)
    per_chunk = max(1, min(E._CHUNK_ENTRIES // n_img, E._CHUNK_ENTRIES // (n_sets * n_classes * n_subgroups)))
    chunks = [min(per_chunk, bootstrap - s) for s in range(0, bootstrap, per_chunk)]
    from tqdm.auto import tqdm

    from cifarb._progress import show_progress

    bar = tqdm(total=bootstrap, desc="bootstrap", unit="resample", file=sys.stderr,
               disable=not show_progress(progress), leave=False)
    try:
        for size in chunks:
            # slot i of a replicate draws a uniform image of its own cell: resampling within cells
            src = slot_start + (rng.random((size, n_img)) * slot_size).astype(np.int64)
            flat = (np.arange(size)[:, None] * n_img + src).ravel()
            weights = np.bincount(flat, minlength=size * n_img).reshape(size, n_img).astype(np.float32)
            # float32 sums of counts stay exact (< 2**24); one small product per cell
            k = np.zeros((n_classes * n_subgroups, size, n_sets), dtype=np.float32)
            for cid, s, m in zip(ids, starts, sizes):
                np.matmul(weights[:, s:s + m], x[s:s + m], out=k[cid])
            k = np.rint(k).astype(np.int64).transpose(1, 2, 0)
            yield k.reshape(size, n_sets, n_classes, n_subgroups)
            bar.update(size)
    finally:
        bar.close()


def corruption_metrics(labels: Any, predictions: Mapping[str, Mapping[Any, Any]], subgroups: Any, *,
                       n_classes: int | None = None, n_subgroups: int | None = None,
                       class_names: Sequence[str] | None = None, subgroup_names: Sequence[str] | None = None,
                       bootstrap: int = 1000, seed: int = 0, min_cell_size: int = 1, min_cell_size_worst: int = 10,
                       null_draws: int = 1000, progress: bool = False,
                       permutations: int = PERMUTATIONS) -> CorruptionMetrics:
    """The metric part of a -C result from predictions {corruption: {severity: predictions}}.

    Every pair must cover the same images as `labels`/`subgroups`. Per-pair metrics and noise floors
    equal `compute_metrics` with the same seed; `combine_corruptions` gives the means. CIs (per pair,
    of the means over all pairs, over the paper's 18 and per severity) come from one stratified
    resample of the images per replicate, evaluated on every pair, so the spread of a mean over
    pairs reflects that the pairs share their images. Each pair's `macro_std_debiased` interval and
    `p_subgroup_effect` are its own (as `compute_metrics`); the means' D gets the basic interval of
    the joint resample and no p-value (a mean over pairs is not one test).

    Returns a read-only `CorruptionMetrics`: the result contract's keys as a Mapping, `to_dict()` for
    plain JSON, `pair(name, severity)` for one pair's `SubgroupMetrics`, and table views.
    """
    _check_settings(bootstrap, seed, min_cell_size, min_cell_size_worst, null_draws, permutations)
    pairs = normalise_pairs(predictions)
    keys = [(name, sev) for name, by_sev in pairs.items() for sev in by_sev]
    checked = []
    for name, sev in keys:
        y, p, g, cnames, gnames = prepare_arrays(labels, pairs[name][sev], subgroups, n_classes=n_classes,
                                                 n_subgroups=n_subgroups, class_names=class_names,
                                                 subgroup_names=subgroup_names)
        checked.append(p)
        n_classes, n_subgroups = len(cnames), len(gnames)
    correct = np.stack([y == p for p in checked], axis=1)  # (N, P)
    C, G = len(cnames), len(gnames)
    opts = {"min_cell_size": int(min_cell_size), "min_cell_size_worst": int(min_cell_size_worst)}
    n = E.cell_counts(y, correct[:, 0], g, C, G)[0]  # the same images, hence cells, for every pair
    from tqdm.auto import tqdm

    from cifarb._progress import show_progress

    singles = []
    pair_bar = tqdm(range(len(keys)), desc="metrics per pair", unit="pair", file=sys.stderr, leave=False,
                    disable=not show_progress(progress))
    for j in pair_bar:  # the noise floor (null_draws per pair) dominates this loop on CIFAR100-C
        k = E.cell_counts(y, correct[:, j], g, C, G)[1]
        singles.append(metrics_from_counts(n, k, class_names=cnames, subgroup_names=gnames, bootstrap=0, seed=seed,
                                           null_draws=null_draws, permutations=permutations, **opts))
    nulls = np.array([m.macro_std_null if m.macro_std_null is not None else np.nan for m in singles])

    samples: dict[str, np.ndarray] | None = None
    if bootstrap > 0:
        boot_seed, _ = seed_sequences(seed)
        parts: dict[str, list[np.ndarray]] = {}
        with _one_blas_thread():
            for k_rep in _joint_replicates(y, g, correct, C, G, int(bootstrap), np.random.default_rng(boot_seed),
                                           progress):
                rep = E.scalar_metrics(n, k_rep, **opts)  # scalars (b, P); class (b, P, C); subgroup (b, P, G)
                rep["macro_std_null"] = np.broadcast_to(nulls, rep["accuracy"].shape)
                rep["macro_std_excess"] = rep["macro_std"] - nulls
                for key, value in rep.items():
                    dtype = np.float32 if value.ndim > 2 else np.float64  # per-class samples dominate memory
                    parts.setdefault(key, []).append(np.asarray(value, dtype=dtype))
        samples = {key: np.concatenate(v) for key, v in parts.items()}

    # each pair: its own CIs and p-value, computed as compute_metrics does, from its slice of the joint resample
    per_pair: dict[tuple[str, str], SubgroupMetrics] = {}
    for j, key in enumerate(keys):
        boot = None if samples is None else {name: v[:, j] for name, v in samples.items()}
        per_pair[key] = with_intervals(singles[j], boot)
    combined = combine_corruptions({name: {sev: per_pair[(name, sev)].to_dict() for sev in pairs[name]}
                                    for name in pairs})

    # each mean over pairs (all, the paper's 18, each severity): CIs from the mean of its pairs' samples
    index = {key: j for j, key in enumerate(keys)}
    means = combined["corruptions_mean"]
    blocks = [(means["all"], list(index.values()))]
    if means["paper18"] is not None:
        blocks.append((means["paper18"], [index[(name, s)] for name in PAPER18 for s in pairs[name]]))
    blocks += [(block, [index[(name, sev)] for name in pairs if sev in pairs[name]])
               for sev, block in means["by_severity"].items()]
    for block, members in (blocks if samples is not None else []):  # bootstrap 0: the means keep ci95 None
        # a metric is defined for all pairs or for none (they share cells), so a plain mean suffices
        boot = {key: samples[key][:, members].astype(np.float64).mean(axis=1) for key in samples}
        ci, class_ci, sub_ci = intervals_from_samples(boot, block, block["class_accuracy"], block["subgroup_accuracy"])
        block["ci95"] = _lists(ci)
        if block is means["all"]:  # the top level is the mean over all pairs: the same intervals
            combined["ci95"] = _lists(ci)
            combined["class_accuracy_ci95"] = _lists(class_ci)
            combined["subgroup_accuracy_ci95"] = _lists(sub_ci)
    return CorruptionMetrics(combined, per_pair)


def _lists(intervals: dict[str, tuple[float, float] | None]) -> dict[str, list[float] | None]:
    return {key: (None if v is None else [v[0], v[1]]) for key, v in intervals.items()}
