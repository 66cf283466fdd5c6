"""Subgroup metrics with noise floor and stratified bootstrap CIs, computed from plain label arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from cifarb.metrics import _engine as E
from cifarb.metrics import catalog
from cifarb.metrics._engine import MetricsInputError
from cifarb.metrics.frame import AccuracyMetrics

if TYPE_CHECKING:  # pandas is imported only by the DataFrame exports
    import pandas as pd

# the scalar metrics that carry a CI in the result contract, in contract order (metrics/catalog.toml)
CI_METRICS: tuple[str, ...] = catalog.CI_KEYS

# default number of within-class permutations behind p_subgroup_effect
PERMUTATIONS = 999

Interval = tuple[float, float]


def _num(value: float | np.floating) -> float | None:
    """A JSON-ready number: NaN (undefined) becomes None."""
    value = float(value)
    return None if np.isnan(value) else value


def _interval(lo: float, hi: float, point: float | None = None) -> Interval | None:
    """A (lo, hi) pair, None when undefined; widened to contain `point` when one is given.

    For the accuracy-type metrics the bootstrap median equals the estimate (the resampled correct
    count is a sum of independent binomials with an integer mean, whose median is that mean; Jogdeo &
    Samuels 1968), so with the default 1,000 resamples the percentile interval contains it anyway;
    the widening only matters for a handful of resamples, where Monte Carlo chance could miss it.
    """
    if np.isnan(lo) or np.isnan(hi):
        return None
    lo, hi = float(lo), float(hi)
    if point is not None:
        lo, hi = min(lo, point), max(hi, point)
    return (lo, hi)


def _names(names: Sequence[str] | None, count: int, what: str) -> list[str]:
    if names is None:
        return [str(i) for i in range(count)]
    out = [str(x) for x in names]
    if len(out) != count:
        raise MetricsInputError(f"{len(out)} {what} names given for {count} {what} ids; give one name per id")
    if len(set(out)) != len(out):
        raise MetricsInputError(f"{what} names must be unique, got {out}")
    return out


def _check_settings(bootstrap: int, seed: int, min_cell_size: int, min_cell_size_worst: int,
                    null_draws: int, permutations: int = PERMUTATIONS) -> None:
    if int(permutations) < 0:
        raise MetricsInputError(f"permutations must be >= 0 (0 turns the test off), got {permutations}")
    if int(bootstrap) < 0:
        raise MetricsInputError(f"bootstrap must be >= 0 (0 turns CIs off), got {bootstrap}")
    if int(seed) < 0:
        raise MetricsInputError(f"seed must be a non-negative integer, got {seed}")
    if int(min_cell_size) < 1 or int(min_cell_size_worst) < 1:
        raise MetricsInputError(
            f"min_cell_size and min_cell_size_worst must be >= 1, got {min_cell_size}, {min_cell_size_worst}"
        )
    if int(null_draws) < 1:
        raise MetricsInputError(f"null_draws must be >= 1, got {null_draws}")


def seed_sequences(seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """Independent seeds for the CIs and the noise floor, so the floor does not depend on B."""
    boot, null = np.random.SeedSequence(int(seed)).spawn(2)
    return boot, null


def inference_seed_sequences(seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """Seeds of the permutation test and of D's interval: the third and fourth children of `seed`,
    so adding them left the bootstrap and noise-floor streams (the first two) unchanged."""
    _, _, perm, inversion = np.random.SeedSequence(int(seed)).spawn(4)
    return perm, inversion


def debiased_ci_and_test(n: np.ndarray, k: np.ndarray, *, seed: int, min_cell_size: int, with_ci: bool,
                         permutations: int) -> tuple[Interval | None, float | None]:
    """(ci95 of macro_std_debiased, p_subgroup_effect) of one cell table; None where off or undefined."""
    perm_seed, inv_seed = inference_seed_sequences(seed)
    ci = p = None
    if with_ci:
        lo, hi = E.debiased_interval(n, k, min_cell_size=min_cell_size, rng_seed=inv_seed)
        ci = _interval(max(lo, 0.0), min(hi, 1.0))
    observed = float(E.macro_std(n, k, min_cell_size))
    if with_ci and permutations > 0 and not np.isnan(observed):
        null = E.permutation_null(n, k, int(permutations), np.random.default_rng(perm_seed), min_cell_size)
        p = E.permutation_p_value(observed, null)
    return ci, p


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    boot, null = seed_sequences(seed)
    return np.random.default_rng(boot), np.random.default_rng(null)


def prepare_arrays(labels: Any, predictions: Any, subgroups: Any | None, *, n_classes: int | None,
                   n_subgroups: int | None, class_names: Sequence[str] | None,
                   subgroup_names: Sequence[str] | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """Validated (labels, predictions, subgroups) as int64 arrays, with the class and subgroup names."""
    y = E.as_index_array(labels, "labels")
    p = E.as_index_array(predictions, "predictions")
    if y.size == 0:
        raise MetricsInputError("no samples: labels is empty")
    if p.shape != y.shape:
        raise MetricsInputError(f"predictions has {p.size} entries but labels has {y.size}; give one per sample")
    if subgroups is None:
        g = np.zeros_like(y)
        if n_subgroups is None and subgroup_names is None:
            n_subgroups = 1
    else:
        g = E.as_index_array(subgroups, "subgroups")
        if g.shape != y.shape:
            raise MetricsInputError(f"subgroups has {g.size} entries but labels has {y.size}; give one per sample")
    if n_classes is None:
        n_classes = len(class_names) if class_names is not None else int(max(y.max(), p.max())) + 1
    if n_subgroups is None:
        n_subgroups = len(subgroup_names) if subgroup_names is not None else int(g.max()) + 1
    if y.max() >= n_classes:
        raise MetricsInputError(f"labels contain class {int(y.max())} but there are only {n_classes} classes")
    if p.max() >= n_classes:
        raise MetricsInputError(
            f"predictions contain class {int(p.max())} but there are only {n_classes} classes (0..{n_classes - 1})"
        )
    if g.max() >= n_subgroups:
        raise MetricsInputError(f"subgroups contain id {int(g.max())} but there are only {n_subgroups} subgroups")
    cnames = _names(class_names, int(n_classes), "class")
    gnames = _names(subgroup_names, int(n_subgroups), "subgroup")
    return y, p, g, cnames, gnames


@dataclass
class SubgroupMetrics:
    """Every contract metric of one prediction set, its CIs, and the cell table behind them.

    Built by `compute_metrics`. Scalars are floats, or None when undefined (e.g. no cell reaches
    `min_cell_size_worst`). `ci95` is None when the bootstrap is off.
    """

    class_names: list[str]
    subgroup_names: list[str]
    n: np.ndarray  # (C, G) images per (class, subgroup) cell
    k: np.ndarray  # (C, G) correct predictions per cell
    accuracy: float
    macro_std: float | None
    macro_std_null: float | None
    macro_std_excess: float | None
    worst_cell_accuracy: float | None
    worst_subgroup_accuracy: float | None
    subgroup_gap: float | None
    mean_cell_accuracy: float | None
    class_accuracy: dict[str, float | None]
    subgroup_accuracy: dict[str, float | None]
    settings: dict[str, Any]
    ci95: dict[str, Interval | None] | None = None
    class_accuracy_ci95: dict[str, Interval | None] | None = None
    subgroup_accuracy_ci95: dict[str, Interval | None] | None = None
    cell_ci95: np.ndarray | None = field(default=None, repr=False)  # (2, C, G) lo/hi, NaN if empty
    macro_std_debiased: float | None = None  # estimate of the true MacroStd (docs/metrics.md)
    p_subgroup_effect: float | None = None  # within-class permutation test; None without a bootstrap

    # --- fairlearn-MetricFrame-like views ---------------------------------------------------------
    @property
    def overall(self) -> float:
        """Overall top-1 accuracy."""
        return self.accuracy

    @property
    def n_images(self) -> int:
        return int(self.n.sum())

    @property
    def aggregates(self) -> dict[str, float | None]:
        """The scalar metrics by name."""
        return {name: getattr(self, name) for name in catalog.ESTIMATES}

    @property
    def cells(self) -> list[dict[str, Any]]:
        """Non-empty cells as contract dicts {"class", "subgroup", "n", "accuracy"}, class-major order."""
        out = []
        for c, g in zip(*np.nonzero(self.n > 0)):
            out.append({"class": self.class_names[c], "subgroup": self.subgroup_names[g],
                        "n": int(self.n[c, g]), "accuracy": float(self.k[c, g] / self.n[c, g])})
        return out

    @property
    def by_cell(self) -> pd.DataFrame:
        return self.to_frame()

    @property
    def by_class(self) -> pd.Series:
        import pandas as pd

        return pd.Series(self.class_accuracy, name="accuracy", dtype="float64").rename_axis("class")

    @property
    def by_subgroup(self) -> pd.Series:
        import pandas as pd

        return pd.Series(self.subgroup_accuracy, name="accuracy", dtype="float64").rename_axis("subgroup")

    # --- notebook display (cifarb.metrics.display, shared with cifarb.Evaluation) ---------------
    def _display_dict(self) -> dict[str, Any]:
        shape = f"({len(self.class_names)} classes x {len(self.subgroup_names)} subgroups)"
        return {"dataset": shape, "n_images": self.n_images, "n_official": self.n_images, **self.to_dict()}

    def __repr__(self) -> str:
        from cifarb.metrics.display import short_repr

        return short_repr(self._display_dict(), "SubgroupMetrics")

    def _repr_html_(self) -> str:
        from cifarb.metrics.display import html_table

        return html_table(self._display_dict(), "SubgroupMetrics")

    def summary(self) -> str:
        """The readable report `cifarb metrics` prints, for these metrics."""
        from cifarb.metrics.table import format_result

        return format_result(self._display_dict())

    # --- exports ----------------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """Non-empty cells: columns class, subgroup, n, correct, accuracy (+ ci_lo, ci_hi with CIs)."""
        import pandas as pd

        c, g = np.nonzero(self.n > 0)
        data: dict[str, Any] = {
            "class": [self.class_names[i] for i in c],
            "subgroup": [self.subgroup_names[j] for j in g],
            "n": self.n[c, g].astype(np.int64),
            "correct": self.k[c, g].astype(np.int64),
            "accuracy": self.k[c, g] / self.n[c, g],
        }
        if self.cell_ci95 is not None:
            data["ci_lo"] = self.cell_ci95[0][c, g]
            data["ci_hi"] = self.cell_ci95[1][c, g]
        return pd.DataFrame(data)

    def to_dict(self) -> dict[str, Any]:
        """The metric part of the result JSON (the result contract of cifarb/schemas/result.schema.json), JSON-ready."""

        def pairs(d: dict[str, Interval | None] | None) -> dict[str, list[float] | None] | None:
            return None if d is None else {key: (None if v is None else [v[0], v[1]]) for key, v in d.items()}

        out: dict[str, Any] = dict(self.aggregates)
        out["p_subgroup_effect"] = self.p_subgroup_effect
        out["subgroup_accuracy"] = dict(self.subgroup_accuracy)
        out["class_accuracy"] = dict(self.class_accuracy)
        out["cells"] = self.cells
        out["ci95"] = pairs(self.ci95)
        out["class_accuracy_ci95"] = pairs(self.class_accuracy_ci95)
        out["subgroup_accuracy_ci95"] = pairs(self.subgroup_accuracy_ci95)
        out["settings"] = dict(self.settings)
        return out


def _pairs(lo: np.ndarray, hi: np.ndarray, names: Sequence[str]) -> dict[str, Interval | None]:
    return {name: _interval(lo[i], hi[i]) for i, name in enumerate(names)}


def table_intervals(n: np.ndarray, k: np.ndarray, boot: dict[str, np.ndarray], values: dict[str, float | None],
                    class_names: Sequence[str], subgroup_names: Sequence[str], *, min_cell_size_worst: int
                    ) -> tuple[dict[str, Interval | None], dict[str, Interval | None], dict[str, Interval | None],
                               np.ndarray]:
    """(ci95, class CIs, subgroup CIs, cell CIs (2, C, G)) of one cell table (docs/metrics.md).

    accuracy: percentile of the stratified bootstrap `boot` (containing the estimate); macro_std and
    its excess: re-centred percentile (for the plug-in's expectation at this composition); worst cell
    and worst subgroup: min-of-Wilson; gap: pairwise Newcombe with a union bound; mean cell accuracy:
    normal; class, subgroup and cell accuracies: Wilson. `macro_std_debiased` is left None here: its
    interval is the test inversion of `debiased_ci_and_test`. Every interval lies in [0, 1]
    (excess: [-1, 1]) and contains its estimate.
    """
    ci: dict[str, Interval | None] = dict.fromkeys(CI_METRICS)
    lo, hi = E.percentile_ci(boot["accuracy"])
    ci["accuracy"] = _interval(lo, hi, values["accuracy"])
    for name, lower in (("macro_std", 0.0), ("macro_std_excess", -1.0)):
        if values[name] is not None:
            ci[name] = E.recentred_ci(boot[name], float(values[name]), lower, 1.0)
    qualifies = (n > 0) & (n >= min_cell_size_worst)
    if values["worst_cell_accuracy"] is not None and qualifies.any():
        ci["worst_cell_accuracy"] = E.min_of_wilson(k[qualifies], n[qualifies])
    n_g, k_g = n.sum(axis=0), k.sum(axis=0)
    present_g = n_g > 0
    ci["worst_subgroup_accuracy"] = E.min_of_wilson(k_g[present_g], n_g[present_g])
    ci["subgroup_gap"] = E.gap_interval(k_g[present_g], n_g[present_g])
    ci["mean_cell_accuracy"] = E.mean_cell_interval(n, k)
    class_ci = _pairs(*E.wilson(k.sum(axis=1), n.sum(axis=1)), class_names)
    sub_ci = _pairs(*E.wilson(k_g, n_g), subgroup_names)
    return ci, class_ci, sub_ci, np.stack(E.wilson(k, n))


def intervals_from_samples(boot: dict[str, np.ndarray], values: dict[str, float | None],
                           class_acc: dict[str, float | None], sub_acc: dict[str, float | None]
                           ) -> tuple[dict[str, Interval | None], dict[str, Interval | None],
                                      dict[str, Interval | None]]:
    """(ci95, class CIs, subgroup CIs) of a mean over corruption pairs, from its joint-resample samples.

    Means of accuracies (overall, mean cell, class, subgroup) get the percentile interval containing
    the estimate; macro_std, its excess, the worst cell / subgroup and the gap the re-centred
    percentile interval (their resampled means carry the resampling's bias); `macro_std_debiased`
    the basic interval. `boot` holds CI_METRICS plus "class_accuracy" (B, C) and "subgroup_accuracy" (B, G).
    """
    ci: dict[str, Interval | None] = {}
    for name in CI_METRICS:
        value = values[name]
        if value is None:
            ci[name] = None
        elif name in E.ACCURACY_TYPE:
            ci[name] = _interval(*E.percentile_ci(boot[name]), value)
        elif name == "macro_std_debiased":
            lo, hi = E.basic_ci(boot[name], value)
            ci[name] = _interval(max(lo, 0.0), min(hi, 1.0), value)
        else:
            ci[name] = E.recentred_ci(boot[name], value, -1.0 if name == "macro_std_excess" else 0.0, 1.0)
    lo, hi = E.percentile_ci(boot["class_accuracy"])
    class_ci = {name: _interval(lo[i], hi[i], v) for i, (name, v) in enumerate(class_acc.items())}
    lo, hi = E.percentile_ci(boot["subgroup_accuracy"])
    sub_ci = {name: _interval(lo[j], hi[j], v) for j, (name, v) in enumerate(sub_acc.items())}
    return ci, class_ci, sub_ci


def metrics_from_counts(n: np.ndarray, k: np.ndarray, *, class_names: Sequence[str] | None = None,
                        subgroup_names: Sequence[str] | None = None, bootstrap: int = 1000, seed: int = 0,
                        min_cell_size: int = 1, min_cell_size_worst: int = 10, null_draws: int = 1000,
                        replicates: np.ndarray | None = None, permutations: int = PERMUTATIONS) -> SubgroupMetrics:
    """`compute_metrics` on (C, G) cell counts (images `n`, correct `k`) instead of per-sample arrays.

    `replicates` ((B, C, G) correct counts) replaces the internal stratified resampling, e.g. when one
    joint resample of images is shared by several prediction sets; `bootstrap` is then ignored.
    """
    _check_settings(bootstrap, seed, min_cell_size, min_cell_size_worst, null_draws, permutations)
    n = np.asarray(n, dtype=np.int64)
    k = np.asarray(k, dtype=np.int64)
    if n.ndim != 2 or k.shape != n.shape or (n < 0).any() or (k < 0).any() or (k > n).any():
        raise MetricsInputError("cell counts must be two (C, G) matrices with 0 <= correct <= images")
    if n.sum() == 0:
        raise MetricsInputError("no samples: every cell is empty")
    cnames = _names(class_names, n.shape[0], "class")
    gnames = _names(subgroup_names, n.shape[1], "subgroup")
    boot_rng, null_rng = _rngs(seed)
    opts = {"min_cell_size": int(min_cell_size), "min_cell_size_worst": int(min_cell_size_worst)}

    point = E.scalar_metrics(n, k, **opts)
    null = E.macro_std_null(n, k, min_cell_size=int(min_cell_size), draws=int(null_draws), rng=null_rng)
    ms = float(point["macro_std"])
    values: dict[str, float | None] = {name: _num(point[name]) for name in E.SCALAR_METRICS}
    values["macro_std_null"] = _num(null)
    values["macro_std_excess"] = _num(ms - null)
    class_acc = {name: _num(v) for name, v in zip(cnames, point["class_accuracy"])}
    sub_acc = {name: _num(v) for name, v in zip(gnames, point["subgroup_accuracy"])}

    if replicates is None and bootstrap > 0:
        replicates = np.concatenate([E.stratified_resample_counts(n, k, size, boot_rng)
                                     for size in E.chunk_sizes(int(bootstrap), n.size)])
    boot = None
    if replicates is not None and replicates.shape[0]:
        boot = E.scalar_metrics(n, replicates, **opts)
        boot["macro_std_excess"] = boot["macro_std"] - null  # the floor is a fixed function of n and m_c

    settings = {
        "bootstrap": 0,
        "seed": int(seed),
        "min_cell_size": int(min_cell_size),
        "min_cell_size_worst": int(min_cell_size_worst),
        "subgroup_names": list(gnames),
        "macro_std_null_draws": int(null_draws),
        "permutations": int(permutations),
    }
    point_metrics = SubgroupMetrics(
        class_names=cnames, subgroup_names=gnames, n=n, k=k,
        accuracy=float(values["accuracy"]),  # type: ignore[arg-type]
        macro_std=values["macro_std"], macro_std_null=values["macro_std_null"],
        macro_std_excess=values["macro_std_excess"], worst_cell_accuracy=values["worst_cell_accuracy"],
        worst_subgroup_accuracy=values["worst_subgroup_accuracy"], subgroup_gap=values["subgroup_gap"],
        mean_cell_accuracy=values["mean_cell_accuracy"], class_accuracy=class_acc, subgroup_accuracy=sub_acc,
        settings=settings, macro_std_debiased=values["macro_std_debiased"],
    )
    return with_intervals(point_metrics, boot)


def with_intervals(m: SubgroupMetrics, boot: dict[str, np.ndarray] | None) -> SubgroupMetrics:
    """`m` (point metrics, no CIs) with its CIs and p-value from bootstrap samples of its cell table.

    `boot` holds (B,) samples of "accuracy", "macro_std" and "macro_std_excess" (the stratified
    resample of `metrics_from_counts`, or one pair's slice of the joint resample of
    `corruption_metrics`); None (or B = 0) leaves the CIs and the p-value None. The seeds and cell
    sizes are `m.settings`', so a pair's intervals are computed exactly as `compute_metrics`'s.
    """
    s = m.settings
    n_boot = 0 if boot is None else int(np.shape(boot["accuracy"])[0])
    ci = class_ci = sub_ci = cell_ci = None
    if n_boot:
        values = {**m.aggregates}
        ci, class_ci, sub_ci, cell_ci = table_intervals(m.n, m.k, boot, values, m.class_names, m.subgroup_names,
                                                        min_cell_size_worst=int(s["min_cell_size_worst"]))
    d_ci, p_value = debiased_ci_and_test(m.n, m.k, seed=int(s["seed"]), min_cell_size=int(s["min_cell_size"]),
                                         with_ci=n_boot > 0, permutations=int(s["permutations"]))
    if ci is not None:
        ci["macro_std_debiased"] = d_ci
    return replace(m, settings={**s, "bootstrap": n_boot}, ci95=ci, class_accuracy_ci95=class_ci,
                   subgroup_accuracy_ci95=sub_ci, cell_ci95=cell_ci, p_subgroup_effect=p_value)


def compute_metrics(labels: Any, predictions: Any, subgroups: Any, *, n_classes: int | None = None,
                    n_subgroups: int | None = None, class_names: Sequence[str] | None = None,
                    subgroup_names: Sequence[str] | None = None, bootstrap: int = 1000, seed: int = 0,
                    min_cell_size: int = 1, min_cell_size_worst: int = 10,
                    null_draws: int = 1000, permutations: int = PERMUTATIONS) -> SubgroupMetrics:
    """All subgroup metrics of docs/metrics.md for one prediction set, with seeded stratified bootstrap CIs.

    labels, predictions, subgroups: 1-D integer ids, one per sample (any dataset). `n_classes` /
    `n_subgroups` default to the number of names, else to the largest id + 1. `bootstrap` resamples
    (0: no CIs); `null_draws` parametric draws for `macro_std_null`. `min_cell_size` drops smaller
    cells from MacroStd (and its floor) only; `min_cell_size_worst` is the size a cell needs to count
    for `worst_cell_accuracy`. `permutations` within-class permutations give `p_subgroup_effect`
    (computed with the intervals, so `bootstrap=0` or `permutations=0` leaves it None).
    """
    y, p, g, cnames, gnames = prepare_arrays(labels, predictions, subgroups, n_classes=n_classes,
                                             n_subgroups=n_subgroups, class_names=class_names,
                                             subgroup_names=subgroup_names)
    n, k = E.cell_counts(y, y == p, g, len(cnames), len(gnames))
    return metrics_from_counts(n, k, class_names=cnames, subgroup_names=gnames, bootstrap=bootstrap, seed=seed,
                               min_cell_size=min_cell_size, min_cell_size_worst=min_cell_size_worst,
                               null_draws=null_draws, permutations=permutations)


def subgroup_effect_p(labels: Any, predictions: Any, subgroups: Any, *, n_classes: int | None = None,
                      n_subgroups: int | None = None, seed: int = 0, min_cell_size: int = 1,
                      permutations: int = PERMUTATIONS) -> float | None:
    """`p_subgroup_effect` alone: the within-class permutation test of `compute_metrics` (the same seed
    stream, so the same value for the same seed), without the intervals; None when `permutations` is 0
    or MacroStd is undefined."""
    _check_settings(0, seed, min_cell_size, 1, 1, permutations)
    y, p, g, cnames, gnames = prepare_arrays(labels, predictions, subgroups, n_classes=n_classes,
                                             n_subgroups=n_subgroups, class_names=None, subgroup_names=None)
    n, k = E.cell_counts(y, y == p, g, len(cnames), len(gnames))
    observed = float(E.macro_std(n, k, int(min_cell_size)))
    if int(permutations) == 0 or np.isnan(observed):
        return None
    perm_seed, _ = inference_seed_sequences(seed)
    null = E.permutation_null(n, k, int(permutations), np.random.default_rng(perm_seed), int(min_cell_size))
    return E.permutation_p_value(observed, null)


# keys that have no meaning without subgroups (CIFAR-10.1): null in the result
SUBGROUP_KEYS: tuple[str, ...] = catalog.SUBGROUP_KEYS


def accuracy_only(labels: Any, predictions: Any, *, class_names: Sequence[str] | None = None,
                  n_classes: int | None = None, bootstrap: int = 1000, seed: int = 0, min_cell_size: int = 1,
                  min_cell_size_worst: int = 10, permutations: int = PERMUTATIONS) -> AccuracyMetrics:
    """The metric part of the result for a set without subgroups (CIFAR-10.1), as a read-only `AccuracyMetrics`.

    Accuracy and class accuracies with class-stratified bootstrap CIs; every subgroup key is null and
    `cells` is empty. `min_cell_size*` and `permutations` are only recorded in `settings`, so all
    results share one shape. `to_dict()` gives the plain dict.
    """
    y, p, g, cnames, _ = prepare_arrays(labels, predictions, None, n_classes=n_classes, n_subgroups=1,
                                        class_names=class_names, subgroup_names=None)
    n, k = E.cell_counts(y, y == p, g, len(cnames), 1)
    # one subgroup per class: the cells are the classes, so this is the class-stratified bootstrap
    full = metrics_from_counts(n, k, class_names=cnames, subgroup_names=["all"], bootstrap=bootstrap, seed=seed,
                               min_cell_size=min_cell_size, min_cell_size_worst=min_cell_size_worst,
                               null_draws=1, permutations=0)
    out = full.to_dict()
    for key in SUBGROUP_KEYS:
        out[key] = None
    out["subgroup_accuracy"] = None
    out["subgroup_accuracy_ci95"] = None
    out["cells"] = []
    if out["ci95"] is not None:
        out["ci95"] = {name: (out["ci95"]["accuracy"] if name == "accuracy" else None) for name in CI_METRICS}
    out["settings"]["subgroup_names"] = None
    out["settings"]["permutations"] = int(permutations)
    out["settings"].pop("macro_std_null_draws")
    return AccuracyMetrics(out, n=n[:, 0], k=k[:, 0])
