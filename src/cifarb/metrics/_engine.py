"""Vectorised metric arithmetic on (class x subgroup) cell counts, shared by every public metrics function.

Every contract metric depends on the predictions only through two (C, G) matrices: `n` (images per
cell) and `k` (correct images per cell). Bootstrap replicates therefore never touch images: they are
stacks of `k` matrices with leading axes, and every function here broadcasts over those axes.
"""

from __future__ import annotations

import numpy as np

from cifarb.errors import CifarbError
from cifarb.metrics import catalog

# scalar metrics in contract order; each is a float array over the leading (replicate) axes
SCALAR_METRICS: tuple[str, ...] = (
    "accuracy",
    "macro_std",
    "macro_std_debiased",
    "worst_cell_accuracy",
    "worst_subgroup_accuracy",
    "subgroup_gap",
    "mean_cell_accuracy",
)

# the metrics whose CI is required to contain the point estimate (docs/metrics.md, confidence intervals)
ACCURACY_TYPE: frozenset[str] = frozenset(catalog.keys(kind="accuracy"))

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
    out["macro_std_debiased"] = macro_std_debiased(n, kf, min_cell_size)

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


def _kept_cells(n: np.ndarray, k: np.ndarray, min_cell_size: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kept cell sizes, class sizes, classes that keep a cell, within-class weights, cell accuracies)."""
    kept = n >= max(min_cell_size, 1)
    nk = np.where(kept, n, 0).astype(np.float64)
    n_c = nk.sum(axis=1)
    valid = n_c > 0
    w = np.divide(nk, n_c[:, None], out=np.zeros(nk.shape), where=valid[:, None])
    return nk, n_c, valid, w, cell_accuracy(n, k)


def debiased_terms(n: np.ndarray, k: np.ndarray, min_cell_size: int = 1
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V̂_c, B̂_c, valid): each class's plug-in cell variance, its binomial noise term, and which classes count.

    Over the cells MacroStd keeps: V̂_c = sum_g w_g (a_g - m_c)^2 and B̂_c = sum_g w_g (1 - w_g) v̂_g with
    v̂_g = a_g (1 - a_g) / (n_g - 1), or m_c (1 - m_c) n_c / (n_c - 1) for a one-image cell (its own
    variance cannot be estimated from one image). E[V̂_c] = V_c + sum_g w_g (1 - w_g) p_g (1 - p_g) / n_g
    and v̂_g is unbiased for p_g (1 - p_g) / n_g when n_g >= 2, so V̂_c - B̂_c is unbiased for V_c then.
    V̂_c and B̂_c have shape k.shape[:-1]; `valid` is (C,).
    """
    nk, n_c, valid, w, a = _kept_cells(n, k, min_cell_size)
    m = (w * a).sum(axis=-1)
    var = np.maximum((w * (a - m[..., None]) ** 2).sum(axis=-1), 0.0)
    v_cell = np.divide(a * (1.0 - a), nk - 1.0, out=np.zeros(a.shape), where=nk >= 2)
    one = (m * (1.0 - m) * np.divide(n_c, n_c - 1.0, out=np.zeros(n_c.shape), where=n_c >= 2))[..., None]
    v_cell = np.where(nk == 1, one, v_cell)
    noise = (w * (1.0 - w) * v_cell).sum(axis=-1)
    return var, noise, valid


def macro_std_debiased(n: np.ndarray, k: np.ndarray, min_cell_size: int = 1) -> np.ndarray:
    """D = mean_c sqrt(max(V̂_c - B̂_c, 0)) over k's leading axes; NaN where no class keeps a cell."""
    var, noise, valid = debiased_terms(n, k, min_cell_size)
    if not valid.any():
        return np.full(np.shape(k)[:-2], np.nan)
    return np.sqrt(np.maximum(var - noise, 0.0))[..., valid].mean(axis=-1)


def signed_root_statistic(n: np.ndarray, k: np.ndarray, min_cell_size: int = 1) -> np.ndarray:
    """S = mean_c sign(V̂u_c) sqrt(|V̂u_c|) with V̂u_c = V̂_c - B̂_c: D without the clip at 0.

    Unclipped, S keeps moving with the data when a class's estimate is negative, so the test
    inversion behind D's interval can tell "no effect" from "a small one". Same arithmetic as
    `debiased_terms`, rearranged into a few products because the inversion evaluates it on
    hundreds of thousands of simulated tables.
    """
    nk, n_c, valid, w, a = _kept_cells(n, k, min_cell_size)
    m = np.einsum("...cg,cg->...c", a, w)
    # sum_g w (a - m)^2 = sum_g w a^2 - m^2; noise of a cell with n >= 2: w (1 - w) a (1 - a) / (n - 1)
    q = np.divide(w * (1.0 - w), nk - 1.0, out=np.zeros(nk.shape), where=nk >= 2)
    aa = a * a
    vu = np.einsum("...cg,cg->...c", aa, w) - m * m - np.einsum("...cg,cg->...c", a - aa, q)
    single = (w * (1.0 - w) * (nk == 1)).sum(axis=1) * np.divide(n_c, n_c - 1.0, out=np.zeros(n_c.shape),
                                                                where=n_c >= 2)
    if single.any():
        vu = vu - m * (1.0 - m) * single
    vu = vu[..., valid]
    return (np.sign(vu) * np.sqrt(np.abs(vu))).mean(axis=-1)


def true_macro_std(n: np.ndarray, p: np.ndarray, min_cell_size: int = 1) -> np.ndarray:
    """MacroStd of true cell accuracies `p` ((..., C, G)) at the test-set composition `n`."""
    kept = np.where(n >= max(min_cell_size, 1), n, 0).astype(np.float64)
    n_c = kept.sum(axis=1)
    valid = n_c > 0
    w = np.divide(kept, n_c[:, None], out=np.zeros(kept.shape), where=valid[:, None])
    m = (w * p).sum(axis=-1)
    var = (w * (p - m[..., None]) ** 2).sum(axis=-1)
    # equal accuracies leave rounding residue (~1e-33) in var; it is no spread, so 0 exactly
    var = np.where(var < 1e-24, 0.0, var)
    return np.sqrt(var)[..., valid].mean(axis=-1)


def permutation_null(n: np.ndarray, k: np.ndarray, permutations: int, rng: np.random.Generator,
                     min_cell_size: int = 1) -> np.ndarray:
    """`permutations` plug-in MacroStds with the subgroup labels permuted within each class, shape (R,).

    Permuting the subgroups of a class's images keeps the cell sizes and the class's correct count
    k_c and scatters the k_c correct images uniformly over its n_c slots: the permuted cell counts
    are multivariate hypergeometric (colours n_cg, sample k_c), drawn directly instead of per image.
    """
    k_perm = np.zeros((permutations,) + n.shape, dtype=np.int64)
    k_c = k.sum(axis=1)
    for c in range(n.shape[0]):
        if n[c].sum() == 0 or k_c[c] == 0:
            continue
        k_perm[:, c, :] = rng.multivariate_hypergeometric(n[c], int(k_c[c]), size=permutations)
    return macro_std(n, k_perm, min_cell_size)


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """(1 + #{null >= observed}) / (R + 1); ties count as at least as extreme (relative tolerance)."""
    tol = 1e-10 * max(1.0, abs(observed))
    return float((1 + np.count_nonzero(null >= observed - tol)) / (null.size + 1))


# λ grids of the two families of worlds behind D's interval: the scaled observed pattern (whose truth
# lies well below λ = 1 on small cells) and the pattern shrunk to the debiased size (truth near λ = 1)
_GRID_SCALED = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.05, 1.25, 1.6])
_GRID_SHRUNK = np.array([0.0, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 1.8, 2.2, 3.0])
INVERSION_DRAWS = 300  # simulated test sets per world


def debiased_interval(n: np.ndarray, k: np.ndarray, *, min_cell_size: int, rng_seed: np.random.SeedSequence,
                      draws: int = INVERSION_DRAWS) -> tuple[float, float]:
    """95 % interval for the true MacroStd by inverting a test of the statistic S (`signed_root_statistic`).

    Two one-parameter families of worlds: p_cg(λ) = m_c + λ (a_cg - m_c) (the observed pattern, scaled)
    and the same with each class's deviations shrunk by √(max(V̂_c - B̂_c, 0) / V̂_c) (the pattern at the
    debiased size), both clipped to [0, 1]. For each λ on a grid, S is simulated under Binomial(n, p(λ))
    with the same random stream (so its quantiles move smoothly with λ), and λ is accepted when the
    observed S lies between the 2.5 % and 97.5 % quantiles. The interval is the range of the true
    MacroStd θ(λ) over the accepted worlds of both paths, interpolated at the grid's accept/reject
    boundaries. Returns (nan, nan) when no class keeps a cell.
    """
    var, noise, valid = debiased_terms(n, k, min_cell_size)
    if not valid.any():
        return float("nan"), float("nan")
    s_obs = float(signed_root_statistic(n, k, min_cell_size))
    kept = n >= max(min_cell_size, 1)
    nk = np.where(kept, n, 0)
    n_c = nk.sum(axis=1)
    w = np.divide(nk, n_c[:, None], out=np.zeros(n.shape), where=n_c[:, None] > 0)
    a = cell_accuracy(n, k)
    m = (w * a).sum(axis=1)
    dev = np.where(kept, a - m[:, None], 0.0)
    shrink = np.sqrt(np.divide(np.maximum(var - noise, 0.0), var, out=np.zeros(var.shape), where=var > 0))
    lows, highs = [], []
    for grid, direction in ((_GRID_SCALED, dev), (_GRID_SHRUNK, shrink[:, None] * dev)):
        p = np.clip(m[None, :, None] + grid[:, None, None] * direction[None], 0.0, 1.0)
        theta = true_macro_std(n, p, min_cell_size)
        lo_q = np.empty(len(p))
        hi_q = np.empty(len(p))
        for j, pj in enumerate(p):
            sim = binomial_replicates(nk, pj, draws, np.random.default_rng(rng_seed))
            lo_q[j], hi_q[j] = np.quantile(signed_root_statistic(n, sim, min_cell_size), [0.025, 0.975])
        # >= 0 where the world is accepted; its sign change locates each boundary between grid points
        margin = np.minimum(hi_q - s_obs, s_obs - lo_q)
        # a world with 0/1 cells reproduces S exactly, up to rounding: that tie is an acceptance
        ok = np.flatnonzero(margin >= -1e-12)
        if ok.size == 0:
            continue
        first, last = ok[0], ok[-1]
        lo_t, hi_t = theta[first], theta[last]
        if first > 0:
            t = margin[first] / (margin[first] - margin[first - 1])
            lo_t = theta[first] + t * (theta[first - 1] - theta[first])
        if last < len(theta) - 1:
            t = margin[last] / (margin[last] - margin[last + 1])
            hi_t = theta[last] + t * (theta[last + 1] - theta[last])
        lows.append(lo_t)
        highs.append(hi_t)
    point = float(macro_std_debiased(n, k, min_cell_size))
    if not lows:
        # S lies below every world's acceptance region, even "no effect" (λ = 0): less spread than
        # chance allows, so the data put the truth at 0; [0, D] keeps the estimate inside. (S above every
        # world cannot happen: the widest worlds spread more than the data.)
        return 0.0, point
    # the estimate is kept inside: D's clip at 0 can put it a hair outside the accepted worlds
    return float(min(min(lows), point)), float(max(max(highs), point))


def basic_ci(samples: np.ndarray, estimate: float) -> tuple[float, float]:
    """Basic (reverse-percentile) 95 % interval [2θ̂ - q97.5, 2θ̂ - q2.5] of one statistic's replicates.

    Right for a statistic whose bootstrap bias equals its sampling bias (such as D, or a difference of
    two Ds), where the plain percentile interval would be shifted by that bias twice.
    """
    lo, hi = np.quantile(samples, [0.025, 0.975])
    return 2.0 * estimate - float(hi), 2.0 * estimate - float(lo)


Z95 = 1.959963984540054  # Φ⁻¹(0.975)


def z_quantile(tail: float) -> float:
    """Φ⁻¹(1 - tail): the normal quantile leaving `tail` above it (standard library, no scipy)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(1.0 - tail)


def wilson(k: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion k / n, elementwise; NaN where n == 0."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    safe = np.where(n > 0, n, 1.0)
    p = k / safe
    z2 = z * z
    denom = 1.0 + z2 / safe
    centre = (p + z2 / (2 * safe)) / denom
    half = z * np.sqrt(np.maximum(p * (1 - p) / safe + z2 / (4 * safe * safe), 0.0)) / denom
    lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    # Wilson contains p exactly; rounding at p in {0, 1} must not push an end past it
    return np.minimum(lo, np.where(n > 0, p, np.nan)), np.maximum(hi, np.where(n > 0, p, np.nan))


def min_of_wilson(k: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """95 % interval for min_j p_j from J independent proportions: [min_j L_j(z), min_j U_j(z_J)].

    The lower end fails only if the true minimum's own lower bound exceeds it (one-sided 2.5 % at
    z = 1.96); the upper end fails only if some U_j < p_j, kept below 2.5 % by the union bound
    z_J = Φ⁻¹(1 - 0.025 / J). Contains the estimate min_j k_j / n_j.
    """
    lo, _ = wilson(k, n, Z95)
    _, hi = wilson(k, n, z_quantile(0.025 / k.size))
    return float(lo.min()), float(hi.min())


def newcombe(k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray,
             z: float) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid-score interval (his method 10) for p1 - p2 of independent proportions."""
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    return d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def gap_interval(k: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """95 % interval for max_i p_i - min_j p_j of J independent proportions (the subgroup gap).

    The gap is the largest ordered-pair difference p_i - p_j. Lower end: every ordered pair's
    Newcombe lower bound at the union-bound z = Φ⁻¹(1 - 0.025 / (J (J - 1))) is below its difference,
    hence below the gap, so their maximum is (clipped at 0). Upper end: the true maximising pair's
    one-sided 1.96 upper bound, so the maximum of all pairs' upper bounds. Contains the estimate.
    """
    J = k.size
    if J < 2:
        return 0.0, 0.0
    i, j = np.triu_indices(J, 1)
    lo_u, hi_u = newcombe(k[i], n[i], k[j], n[j], z_quantile(0.025 / (J * (J - 1))))
    lo_z, hi_z = newcombe(k[i], n[i], k[j], n[j], Z95)
    lo = max(0.0, float(np.maximum(lo_u, -hi_u).max()))
    hi = float(np.maximum(hi_z, -lo_z).max())
    return lo, min(hi, 1.0)


def mean_cell_interval(n: np.ndarray, k: np.ndarray) -> tuple[float, float]:
    """Normal 95 % interval for the unweighted mean of cell accuracies, clipped to [0, 1].

    Var = sum_cells v_cg / K^2 with v_cg = a (1 - a) / (n - 1), unbiased for the cell's binomial
    variance; a one-image cell borrows its class's m_c (1 - m_c).
    """
    present = n > 0
    a = cell_accuracy(n, k)
    n_c = n.sum(axis=1)
    m_c = np.divide(k.sum(axis=1), n_c, out=np.zeros(n_c.shape), where=n_c > 0)
    v = np.divide(a * (1 - a), n - 1.0, out=np.zeros(a.shape), where=n >= 2)
    v = np.where(n == 1, (m_c * (1 - m_c))[:, None], v)
    est = float(a[present].mean())
    half = Z95 * float(np.sqrt(v[present].sum())) / int(present.sum())
    return max(0.0, est - half), min(1.0, est + half)


def recentred_ci(samples: np.ndarray, estimate: float, lower: float, upper: float) -> tuple[float, float]:
    """Re-centred percentile 95 % interval: [q2.5 - b, q97.5 - b], b = mean(samples) - estimate.

    Removes the bootstrap's own bias (resampling adds cell noise on top of the data's), then clips
    to [lower, upper] and widens, if needed, to contain the estimate.
    """
    b = float(samples.mean()) - estimate
    lo, hi = np.quantile(samples, [0.025, 0.975])
    lo, hi = max(lower, float(lo) - b), min(upper, float(hi) - b)
    return min(lo, estimate), max(hi, estimate)
