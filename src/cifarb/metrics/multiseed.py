"""Method A vs method B over several training seeds: a two-level (images, then seeds) paired bootstrap.

One seed pair is (A_s, B_s): two models trained with the same seed, scored on the same images. The
estimate of a metric's difference is the mean over seed pairs of (metric(A_s) - metric(B_s)). Its
uncertainty has two sources, and each replicate resamples both:

1. images: the test images of every (class, subgroup) cell are resampled with replacement (the
   stratified bootstrap of `compute_metrics`); when all seed pairs were scored on the same images
   (the normal case) one image resample is shared by every run of the replicate, because the test
   set is one draw common to all seeds; otherwise each seed pair gets its own;
2. seeds: the S seed pairs are resampled with replacement, and the spread of the resampled mean is
   inflated by sqrt(S / (S - 1)) (resampling S values underestimates their variance by (S - 1) / S).

With one seed pair the seed level is skipped (only images are resampled). `bench/multiseed_coverage.py`
measures the coverage of these intervals by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cifarb.metrics import _engine as E
from cifarb.metrics._engine import MetricsInputError
from cifarb.metrics.core import CI_METRICS, _check_settings, prepare_arrays, seed_sequences
from cifarb.metrics.frame import PairedComparison

# replicate x image entries held at once (about 8 bytes each)
_CHUNK = 4_000_000


class _Seed:
    """One seed pair, its images sorted by cell, ready for resampling."""

    def __init__(self, y: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, C: int, G: int) -> None:
        flat = y * G + g
        order = np.argsort(flat, kind="stable")
        self.flat = flat[order]
        self.correct = np.stack([(y == a)[order], (y == b)[order]]).astype(np.int64)  # (2, N)
        self.n, _ = E.cell_counts(y, y == a, g, C, G)
        _, cells, sizes = np.unique(self.flat, return_index=True, return_counts=True)
        self.starts = cells  # first sorted position of every non-empty cell
        self.cell_ids = self.flat[cells]
        pos_cell = np.repeat(np.arange(cells.size), sizes)
        self.pos_start, self.pos_size = cells[pos_cell], sizes[pos_cell]
        self.shape = (C, G)

    def counts(self) -> np.ndarray:
        """(2, C, G) correct counts of A and B on the original images."""
        out = np.zeros((2, self.shape[0] * self.shape[1]), dtype=np.int64)
        out[:, self.cell_ids] = np.add.reduceat(self.correct, self.starts, axis=1)
        return out.reshape(2, *self.shape)

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """`size` stratified image resamples as positions into the sorted images, shape (size, N)."""
        u = rng.random((size, self.flat.size))
        return self.pos_start + np.minimum((u * self.pos_size).astype(np.int64), self.pos_size - 1)

    def resampled_counts(self, idx: np.ndarray) -> np.ndarray:
        """(size, 2, C, G) correct counts of A and B on the resampled images `idx` (size, N)."""
        size = idx.shape[0]
        picked = self.correct[:, idx]  # (2, size, N)
        sums = np.add.reduceat(picked, self.starts, axis=2)  # (2, size, cells)
        out = np.zeros((2, size, self.shape[0] * self.shape[1]), dtype=np.int64)
        out[:, :, self.cell_ids] = sums
        return np.moveaxis(out.reshape(2, size, *self.shape), 0, 1)


def _metrics(n: np.ndarray, k: np.ndarray, null: float, opts: dict[str, int]) -> dict[str, np.ndarray]:
    m = E.scalar_metrics(n, k, **opts)
    out = {name: np.asarray(m[name], dtype=np.float64) for name in CI_METRICS if name in m}
    out["macro_std_excess"] = out["macro_std"] - null
    return out


def _basic_or_percentile(name: str, point: float, samples: np.ndarray) -> list[float] | None:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    if name == "macro_std_debiased":  # clipped at 0 per class: the basic interval cancels its bias
        lo, hi = E.basic_ci(samples, point)
    else:
        lo, hi = E.percentile_ci(samples)
    return [float(lo), float(hi)]


def multiseed_paired_bootstrap(
    seeds: Sequence[tuple[Any, Any, Any, Any]], *, same_images: bool, n_classes: int | None = None,
    n_subgroups: int | None = None, class_names: Sequence[str] | None = None,
    subgroup_names: Sequence[str] | None = None, bootstrap: int = 1000, seed: int = 0, min_cell_size: int = 1,
    min_cell_size_worst: int = 10, null_draws: int = 1000,
) -> PairedComparison:
    """A vs B over seed pairs: {metric: {"a", "b", "diff", "ci95", "per_seed"}}, diff = mean_s(A_s - B_s).

    `seeds` holds one (labels, subgroups, pred_a, pred_b) per seed pair, each 1-D with one entry per
    image. `same_images` says that every seed pair holds the same images in the same order (then one
    image resample per replicate is shared by all of them). "a" and "b" are the means over seeds,
    "per_seed" the per-pair differences, "ci95" the two-level bootstrap 95 % interval of the mean
    difference (percentile; basic for macro_std_debiased), None when `bootstrap` is 0 or undefined.
    Returns a read-only `PairedComparison`, as `paired_bootstrap` does (plus its `per_seed` view).
    """
    _check_settings(bootstrap, seed, min_cell_size, min_cell_size_worst, null_draws)
    if not seeds:
        raise MetricsInputError("no seed pairs given; give at least one (labels, subgroups, pred_a, pred_b)")
    prepared: list[_Seed] = []
    cnames: list[str] = []
    gnames: list[str] = []
    for i, (labels, subgroups, pred_a, pred_b) in enumerate(seeds):
        y, a, g, cnames, gnames = prepare_arrays(labels, pred_a, subgroups, n_classes=n_classes,
                                                 n_subgroups=n_subgroups, class_names=class_names,
                                                 subgroup_names=subgroup_names)
        b = E.as_index_array(pred_b, f"pred_b of seed pair {i}")
        if b.shape != y.shape:
            raise MetricsInputError(f"seed pair {i}: pred_b has {b.size} entries but labels has {y.size}")
        if b.max() >= len(cnames):
            raise MetricsInputError(f"seed pair {i}: pred_b contains class {int(b.max())} but there are only "
                                    f"{len(cnames)} classes")
        prepared.append(_Seed(y, g, a, b, len(cnames), len(gnames)))
        n_classes, n_subgroups = len(cnames), len(gnames)
    if same_images and any(p.flat.size != prepared[0].flat.size or not np.array_equal(p.flat, prepared[0].flat)
                           for p in prepared):
        raise MetricsInputError("same_images=True but the seed pairs hold different (class, subgroup) cells")

    opts = {"min_cell_size": int(min_cell_size), "min_cell_size_worst": int(min_cell_size_worst)}
    boot_seed, null_seed = seed_sequences(seed)
    rng = np.random.default_rng(boot_seed)
    S = len(prepared)
    points: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
    nulls: list[tuple[float, float]] = []
    counts = [p.counts() for p in prepared]
    for p, k in zip(prepared, counts):
        # the same floor stream as compute_metrics, so each side's excess equals its own result's
        na, nb = (E.macro_std_null(p.n, k[j], min_cell_size=opts["min_cell_size"], draws=int(null_draws),
                                   rng=np.random.default_rng(null_seed)) for j in (0, 1))
        nulls.append((na, nb))
        points.append((_metrics(p.n, k[0], na, opts), _metrics(p.n, k[1], nb, opts)))
    names = list(points[0][0])

    reps: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if bootstrap > 0:
        per = max(1, _CHUNK // max(max(p.flat.size for p in prepared), 1))
        for start in range(0, int(bootstrap), per):
            size = min(per, int(bootstrap) - start)
            shared = prepared[0].draw(size, rng) if same_images else None
            diffs = {name: np.empty((size, S)) for name in names}  # image-resampled A_s - B_s
            for s, p in enumerate(prepared):
                idx = shared if shared is not None else p.draw(size, rng)
                k = p.resampled_counts(idx)
                ma = _metrics(p.n, k[:, 0], nulls[s][0], opts)
                mb = _metrics(p.n, k[:, 1], nulls[s][1], opts)
                for name in names:
                    diffs[name][:, s] = ma[name] - mb[name]
            if S > 1:
                pick = rng.integers(0, S, size=(size, S))
                inflate = math.sqrt(S / (S - 1))
            for name in names:
                d = diffs[name]
                centre = d.mean(axis=1)
                if S > 1:
                    resampled = np.take_along_axis(d, pick, axis=1).mean(axis=1)
                    reps[name].append(centre + inflate * (resampled - centre))
                else:
                    reps[name].append(centre)

    out: dict[str, dict[str, Any]] = {}
    for name in names:
        va = np.array([pa[name] for pa, _ in points], dtype=np.float64)
        vb = np.array([pb[name] for _, pb in points], dtype=np.float64)
        defined = bool(np.isfinite(va).all() and np.isfinite(vb).all())
        diff = float((va - vb).mean()) if defined else None
        ci = _basic_or_percentile(name, diff, np.concatenate(reps[name])) if reps[name] and defined else None
        out[name] = {
            "a": float(va.mean()) if np.isfinite(va).all() else None,
            "b": float(vb.mean()) if np.isfinite(vb).all() else None,
            "diff": diff, "ci95": ci,
            "per_seed": [None if not math.isfinite(x) else float(x) for x in (va - vb)],
        }
    return PairedComparison(out, n=np.stack([p.n for p in prepared]), k_a=np.stack([k[0] for k in counts]),
                            k_b=np.stack([k[1] for k in counts]), class_names=cnames, subgroup_names=gnames)
