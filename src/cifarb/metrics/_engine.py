"""Vectorised metric arithmetic on (class x subgroup) cell counts, shared by every public metrics function.

Every contract metric depends on the predictions only through two (C, G) matrices: `n` (images per
cell) and `k` (correct images per cell). Bootstrap replicates therefore never touch images: they are
stacks of `k` matrices with leading axes, and every function here broadcasts over those axes.
"""

from __future__ import annotations

import numpy as np

from cifarb.errors import CifarbError

# scalar metrics in contract order; each is a float array over the leading (replicate) axes
SCALAR_METRICS: tuple[str, ...] = (
    "accuracy",
    "macro_std",
    "worst_cell_accuracy",
    "worst_subgroup_accuracy",
    "subgroup_gap",
    "mean_cell_accuracy",
)

# the metrics whose CI is required to contain the point estimate (DESIGN.md, confidence intervals)
ACCURACY_TYPE: frozenset[str] = frozenset({"accuracy", "mean_cell_accuracy"})

# replicates x cells per chunk: bounds memory (~8 bytes per entry, a few arrays alive at once)
_CHUNK_ENTRIES = 2_000_000


class MetricsInputError(CifarbError, ValueError):
    """Bad arrays or settings given to a metrics function (a CifarbError, so the CLI prints it cleanly)."""


def as_index_array(values: object, name: str) -> np.ndarray:
    """`values` as a 1-D int64 array of non-negative integers, or MetricsInputError naming `name`."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MetricsInputError(f"{name} must be a 1-D array of integer ids, got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise MetricsInputError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        # integral floats (e.g. read from a CSV with a missing value elsewhere) are accepted; others are not
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise MetricsInputError(
                f"{name} must hold integer ids, got non-integer values; if these are scores or logits, "
                "take the argmax over classes first"
            )
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        raise MetricsInputError(f"{name} contains a negative id ({int(out.min())}); ids start at 0")
    return out


def cell_counts(labels: np.ndarray, correct: np.ndarray, subgroups: np.ndarray, n_classes: int,
                n_subgroups: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, k): int64 (C, G) matrices of images and of correct images per (true class, subgroup) cell."""
    flat = labels * n_subgroups + subgroups
    size = n_classes * n_subgroups
    n = np.bincount(flat, minlength=size).reshape(n_classes, n_subgroups)
    k = np.bincount(flat, weights=correct.astype(np.float64), minlength=size)
    return n, np.rint(k).astype(np.int64).reshape(n_classes, n_subgroups)


def cell_accuracy(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """k / n broadcast over k's leading axes; 0 where a cell is empty (callers mask empty cells)."""
    kf = np.asarray(k, dtype=np.float64)
    return np.divide(kf, n, out=np.zeros(kf.shape), where=n > 0)


def macro_std(n: np.ndarray, k: np.ndarray, min_cell_size: int = 1) -> np.ndarray:
    """MacroStd (population form) over cells with n >= min_cell_size, weights renormalised per class.

    Returns an array over k's leading axes; NaN where no class keeps a cell.
    """
    kept = (n >= max(min_cell_size, 1)).astype(np.float64) * n
    n_kept_c = kept.sum(axis=1)
    valid = n_kept_c > 0
    if not valid.any():
        return np.full(np.shape(k)[:-2], np.nan)
    w = np.divide(kept, n_kept_c[:, None], out=np.zeros(kept.shape), where=valid[:, None])
    a = cell_accuracy(n, k)
    m = (w * a).sum(axis=-1)
    var = (w * (a - m[..., None]) ** 2).sum(axis=-1)
    # rounding can push a zero variance a hair below 0
    std = np.sqrt(np.maximum(var, 0.0))
    return std[..., valid].mean(axis=-1)


def scalar_metrics(n: np.ndarray, k: np.ndarray, *, min_cell_size: int = 1,
                   min_cell_size_worst: int = 10) -> dict[str, np.ndarray]:
    """Every scalar contract metric except the noise floor, plus class/subgroup accuracies.

    `n` is (C, G); `k` is (..., C, G). Scalars come back with shape k.shape[:-2]; "class_accuracy" is
    (..., C) and "subgroup_accuracy" is (..., G), NaN where the class or subgroup has no images.
    """
    kf = np.asarray(k, dtype=np.float64)
    lead = kf.shape[:-2]
    present = n > 0
    a = cell_accuracy(n, kf)

    n_c = n.sum(axis=1)
    n_g = n.sum(axis=0)
    class_acc = np.divide(kf.sum(axis=-1), n_c, out=np.full(lead + n_c.shape, np.nan), where=n_c > 0)
    sub_acc = np.divide(kf.sum(axis=-2), n_g, out=np.full(lead + n_g.shape, np.nan), where=n_g > 0)

    out: dict[str, np.ndarray] = {"accuracy": kf.sum(axis=(-2, -1)) / n.sum()}
    out["macro_std"] = macro_std(n, kf, min_cell_size)

    qualifies = present & (n >= min_cell_size_worst)
    if qualifies.any():
        out["worst_cell_accuracy"] = np.where(qualifies, a, np.inf).min(axis=(-2, -1))
    else:
        out["worst_cell_accuracy"] = np.full(lead, np.nan)

    pooled = sub_acc[..., n_g > 0]
    out["worst_subgroup_accuracy"] = pooled.min(axis=-1)
    out["subgroup_gap"] = pooled.max(axis=-1) - pooled.min(axis=-1)
    # empty cells hold a = 0, so the plain sum over all cells is the sum over present cells
    out["mean_cell_accuracy"] = a.sum(axis=(-2, -1)) / present.sum()
    out["class_accuracy"] = class_acc
    out["subgroup_accuracy"] = sub_acc
    return out


def binomial_replicates(n: np.ndarray, p: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` independent Binomial(n, p) draws of a whole (C, G) matrix, shape (size, C, G).

    Drawn cell-major, so consecutive draws share (n, p) and numpy reuses its per-(n, p) sampler setup
    (about twice as fast as replicate-major); the distribution is the same either way.
    """
    draws = rng.binomial(n[..., None], np.broadcast_to(p, n.shape)[..., None], size=n.shape + (size,))
    return np.ascontiguousarray(np.moveaxis(draws, -1, 0))


def chunk_sizes(total: int, cells: int) -> list[int]:
    """Split `total` replicates into chunks of at most _CHUNK_ENTRIES replicate-cells each."""
    per = max(1, _CHUNK_ENTRIES // max(cells, 1))
    return [min(per, total - start) for start in range(0, total, per)]


def macro_std_null(n: np.ndarray, k: np.ndarray, *, min_cell_size: int, draws: int,
                   rng: np.random.Generator) -> float:
    """Mean MacroStd under "every kept cell of class c has accuracy m_c" (parametric bootstrap).

    m_c is the class accuracy over the cells MacroStd keeps, so the null matches the statistic it
    calibrates; each draw is k0_cg ~ Binomial(n_cg, m_c), all draws in a few vectorised calls.
    """
    if draws < 1:
        raise MetricsInputError(f"the noise floor needs at least one draw, got {draws}")
    kept = n >= max(min_cell_size, 1)
    n_kept = np.where(kept, n, 0)
    n_kept_c = n_kept.sum(axis=1)
    if not (n_kept_c > 0).any():
        return float("nan")
    m_c = np.divide(np.where(kept, k, 0).sum(axis=1), n_kept_c, out=np.zeros(n_kept_c.shape),
                    where=n_kept_c > 0)
    p = np.broadcast_to(m_c[:, None], n.shape)
    total = 0.0
    for size in chunk_sizes(draws, n.size):
        k0 = binomial_replicates(n_kept, p, size, rng)
        total += float(macro_std(n, k0, min_cell_size).sum())
    return total / draws


def stratified_resample_counts(n: np.ndarray, k: np.ndarray, size: int,
                               rng: np.random.Generator) -> np.ndarray:
    """`size` stratified bootstrap replicates of the correct-count matrix, shape (size, C, G).

    Exactly equivalent in distribution to resampling the n_cg images of every cell with replacement:
    each of the n_cg draws picks a correct image with probability k_cg / n_cg, independently of the
    other draws and of the other cells, so the resampled cell's correct count is Binomial(n_cg,
    k_cg / n_cg), independent across cells; n_cg itself is fixed by the stratification, and every
    metric depends on a resample only through these counts.
    """
    p = np.divide(k, n, out=np.zeros(n.shape), where=n > 0)
    return binomial_replicates(n, p, size, rng)


def paired_resample_counts(n: np.ndarray, k11: np.ndarray, k10: np.ndarray, k01: np.ndarray, size: int,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`size` paired stratified replicates: (k_a, k_b), each (size, C, G), from one image resample.

    An image of a cell is one of four kinds (both right, only A right, only B right, both wrong), with
    cell counts k11, k10, k01, n - k11 - k10 - k01. Resampling the cell's n images with replacement
    gives kind counts ~ Multinomial(n, kind shares); it is drawn exactly as a chain of conditional
    binomials: x11 ~ Bin(n, p11), x10 ~ Bin(n - x11, p10 / (1 - p11)),
    x01 ~ Bin(n - x11 - x10, p01 / (1 - p11 - p10)). Then k_a = x11 + x10 and k_b = x11 + x01.
    """
    p11 = np.divide(k11, n, out=np.zeros(n.shape), where=n > 0)
    rest1 = n - k11
    rest2 = rest1 - k10
    q10 = np.divide(k10, rest1, out=np.zeros(n.shape), where=rest1 > 0)
    q01 = np.divide(k01, rest2, out=np.zeros(n.shape), where=rest2 > 0)
    x11 = binomial_replicates(n, p11, size, rng)
    x10 = rng.binomial(n - x11, q10)
    x01 = rng.binomial(n - x11 - x10, q01)
    return x11 + x10, x11 + x01


def percentile_ci(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95 % interval along axis 0; NaN where a replicate is undefined."""
    lo, hi = np.quantile(samples, [0.025, 0.975], axis=0)
    return lo, hi
