"""Read-only result objects: a corruption evaluation and a paired comparison as Mappings with table views.

`SubgroupMetrics` (metrics/core.py) is the result of one prediction set. The two results built from
many prediction sets, `corruption_metrics` (one per corruption x severity pair) and `paired_bootstrap`
/ `multiseed_paired_bootstrap` (one per compared metric), are objects of this module, in the spirit
of fairlearn's `MetricFrame`: one object, read as a Mapping with the result contract's keys (so
`out["corruptions"]["fog"]["2"]`, `.items()` and `set(out)` read as the plain dicts did), plus
`to_dict()` (plain JSON-ready dict), `to_frame()` and `by_class` / `by_subgroup` / `by_cell` views.

They are read-only, all the way down: nested dicts and lists are `FrozenDict` / `FrozenList`
(subclasses of dict and list, so `json.dumps` and JSON Schema validation accept them) whose every
mutator raises TypeError. Build a changed result from `to_dict()`, which returns fresh plain copies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from cifarb.metrics import catalog

if TYPE_CHECKING:  # pandas is imported only by the DataFrame views
    import pandas as pd

    from cifarb.metrics.core import SubgroupMetrics


def _read_only(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is read-only (part of a cifarb result); build a new result from "
                    ".to_dict() instead")


class FrozenDict(dict):
    """A dict whose mutators raise TypeError: a nested value of a read-only result."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:  # pickle and copy rebuild it whole, not key by key
        return type(self), (dict(self),)


class FrozenList(list):
    """A list whose mutators raise TypeError: a nested value of a read-only result."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (list(self),)


def freeze(value: Any) -> Any:
    """`value` with every nested dict and list (and tuple) made read-only; other values as they are."""
    if isinstance(value, Mapping):
        return FrozenDict((key, freeze(v)) for key, v in value.items())
    if isinstance(value, list | tuple):
        return FrozenList(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of `value`: Mappings become dicts, lists and tuples lists."""
    if isinstance(value, Mapping):
        return {key: thaw(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


class ResultMapping(Mapping[str, Any]):
    """A read-only Mapping over a JSON-ready result dict; `to_dict()` returns a plain copy."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data: FrozenDict = freeze(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_data"):  # set once, in __init__
            _read_only(self)
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain dicts and lists (a fresh copy: changing it changes nothing here)."""
        return thaw(self._data)


def _interval_columns(rows: Sequence[Any]) -> tuple[list[float], list[float]]:
    """(lo, hi) columns of [lo, hi] intervals, NaN where one is None."""
    lo = [np.nan if ci is None else float(ci[0]) for ci in rows]
    hi = [np.nan if ci is None else float(ci[1]) for ci in rows]
    return lo, hi


def _counts(value: Any, ndim: int) -> np.ndarray:
    """A read-only int64 copy of cell counts with at least `ndim` dimensions."""
    array = np.array(value, dtype=np.int64, ndmin=ndim)
    array.setflags(write=False)
    return array


def _series(values: Mapping[str, float | None] | None, axis: str) -> pd.Series:
    import pandas as pd

    data = {key: (np.nan if v is None else v) for key, v in (values or {}).items()}
    return pd.Series(data, name="accuracy", dtype="float64").rename_axis(axis)


class ResultPart(ResultMapping):
    """The metric part of a result (the keys of `SubgroupMetrics.to_dict()`), with its views."""

    __slots__ = ()

    @property
    def overall(self) -> float:
        """Overall top-1 accuracy (for a -C result: the mean over the pairs)."""
        return float(self["accuracy"])

    @property
    def aggregates(self) -> dict[str, float | None]:
        """The scalar metrics by name."""
        return {name: self[name] for name in catalog.ESTIMATES}

    @property
    def by_class(self) -> pd.Series:
        return _series(self["class_accuracy"], "class")

    @property
    def by_subgroup(self) -> pd.Series | None:
        """Accuracy per subgroup; None for a set without subgroups."""
        return None if self["subgroup_accuracy"] is None else _series(self["subgroup_accuracy"], "subgroup")


class AccuracyMetrics(ResultPart):
    """The metrics of a prediction set without subgroups (CIFAR-10.1; `accuracy_only`).

    As a Mapping it is the metric part of the result: the keys of `SubgroupMetrics.to_dict()`, every
    subgroup key None and `cells` empty. Views as `SubgroupMetrics`: `overall`, `aggregates`,
    `by_class`, and `to_frame()`, whose cells are the classes (one row per class).
    """

    __slots__ = ("_n", "_k")

    def __init__(self, data: Mapping[str, Any], *, n: np.ndarray, k: np.ndarray) -> None:
        """`n`, `k`: (C,) images and correct predictions per class, in `class_accuracy`'s order."""
        object.__setattr__(self, "_n", _counts(n, 1))
        object.__setattr__(self, "_k", _counts(k, 1))
        super().__init__(data)

    @property
    def n_images(self) -> int:
        return int(self._n.sum())

    def to_frame(self) -> pd.DataFrame:
        """Classes with images: class, n, correct, accuracy (+ ci_lo, ci_hi with CIs)."""
        import pandas as pd

        names = list(self["class_accuracy"])
        present = np.flatnonzero(self._n > 0)
        data: dict[str, Any] = {"class": [names[i] for i in present], "n": self._n[present],
                                "correct": self._k[present], "accuracy": self._k[present] / self._n[present]}
        intervals = self["class_accuracy_ci95"]
        if intervals is not None:
            data["ci_lo"], data["ci_hi"] = _interval_columns([intervals[names[i]] for i in present])
        return pd.DataFrame(data)

    def __repr__(self) -> str:
        return f"<AccuracyMetrics {len(self._n)} classes, {self.n_images:,} images, accuracy {100 * self.overall:.2f} %>"


class CorruptionMetrics(ResultPart):
    """The metrics of one model on every corruption x severity pair of a -C set (`corruption_metrics`).

    As a Mapping it is the metric part of a -C result: the top-level metrics are means over all
    pairs, `corruptions[name][severity]` each pair's metrics, `corruptions_mean` the means over
    all pairs, the paper's 18 and each severity. Views: `pair(name, severity)` is that pair's
    `SubgroupMetrics` (its CIs from the joint resample), `by_pair` one row of scalars per pair,
    `to_frame()` / `by_cell` every pair's cells, `by_class` / `by_subgroup` / `cells` / `aggregates`
    / `overall` the means over pairs, as `SubgroupMetrics` has them for one prediction set.
    """

    __slots__ = ("_pairs",)

    def __init__(self, data: Mapping[str, Any], pairs: Mapping[tuple[str, str], SubgroupMetrics]) -> None:
        object.__setattr__(self, "_pairs", dict(pairs))
        super().__init__(data)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(corruption, severity) of every pair, in result order; severities are strings as in the JSON."""
        return list(self._pairs)

    def pair(self, corruption: str, severity: int | str) -> SubgroupMetrics:
        """One pair's metrics with its joint-resample CIs (the numbers of `corruptions[name][severity]`)."""
        key = (str(corruption), str(int(severity)))
        if key not in self._pairs:
            raise KeyError(f"no pair {corruption} severity {severity}; the pairs are {self.pairs}")
        return self._pairs[key]

    @property
    def cells(self) -> list[dict[str, Any]]:
        """Cells with their accuracy averaged over the pairs, as contract dicts (plain copies)."""
        return thaw(self["cells"])

    @property
    def by_pair(self) -> pd.DataFrame:
        """One row per pair (index corruption, severity): every catalogue scalar (metrics/catalog.toml)."""
        import pandas as pd

        names = catalog.KEYS
        rows = [[self["corruptions"][c][s][name] for name in names] for c, s in self._pairs]
        index = pd.MultiIndex.from_tuples(self.pairs, names=["corruption", "severity"])
        return pd.DataFrame(rows, index=index, columns=list(names), dtype="float64")

    def to_frame(self) -> pd.DataFrame:
        """Every pair's non-empty cells: corruption, severity, then `SubgroupMetrics.to_frame()`'s columns."""
        import pandas as pd

        frames = []
        for (c, s), m in self._pairs.items():
            frame = m.to_frame()
            frame.insert(0, "severity", s)
            frame.insert(0, "corruption", c)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    @property
    def by_cell(self) -> pd.DataFrame:
        return self.to_frame()

    def __repr__(self) -> str:
        corruptions = len(self["corruptions"])
        acc, ms = self["accuracy"], self["macro_std"]
        spread = "" if ms is None else f", mean MacroStd {100 * ms:.2f} %"
        return (f"<CorruptionMetrics {corruptions} corruption{'s' * (corruptions != 1)}, {len(self._pairs)} pairs, "
                f"mean accuracy {100 * acc:.2f} %{spread}>")


class PairedComparison(ResultMapping):
    """A vs B on the same images: {metric: {"a", "b", "diff", "ci95"}} with diff = a - b (`paired_bootstrap`).

    Over several seed pairs (`multiseed_paired_bootstrap`) "a", "b" and "diff" are means over the
    pairs and each entry also holds "per_seed". Views: `to_frame()` one row per metric (a, b, diff,
    ci_lo, ci_hi), `aggregates` / `overall` the differences, and `by_class` / `by_subgroup` /
    `by_cell` the two sides' accuracies and their difference there (means over seed pairs; point
    values only: the CIs are those of the metrics).
    """

    __slots__ = ("_n", "_k_a", "_k_b", "_class_names", "_subgroup_names")

    def __init__(self, data: Mapping[str, Mapping[str, Any]], *, n: np.ndarray, k_a: np.ndarray, k_b: np.ndarray,
                 class_names: Sequence[str], subgroup_names: Sequence[str]) -> None:
        """`n`, `k_a`, `k_b`: (S, C, G) images and correct predictions of A and B per cell and seed pair."""
        for name, value in (("_n", n), ("_k_a", k_a), ("_k_b", k_b)):
            object.__setattr__(self, name, _counts(value, 3))
        object.__setattr__(self, "_class_names", list(class_names))
        object.__setattr__(self, "_subgroup_names", list(subgroup_names))
        super().__init__(data)

    @property
    def n_seed_pairs(self) -> int:
        return int(self._n.shape[0])

    @property
    def overall(self) -> float | None:
        """The accuracy difference A - B."""
        return self["accuracy"]["diff"]

    @property
    def aggregates(self) -> dict[str, float | None]:
        """The difference A - B of every compared metric, by name."""
        return {name: entry["diff"] for name, entry in self.items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per metric (index "metric"): a, b, diff, ci_lo, ci_hi (NaN where undefined)."""
        import pandas as pd

        names = list(self)
        lo, hi = _interval_columns([self[name]["ci95"] for name in names])
        data = {col: [np.nan if self[name][col] is None else self[name][col] for name in names]
                for col in ("a", "b", "diff")}
        return pd.DataFrame({**data, "ci_lo": lo, "ci_hi": hi}, index=pd.Index(names, name="metric"), dtype="float64")

    def _accuracy(self, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """A's and B's accuracy summed over `axis` of the cell tables, averaged over the seed pairs."""
        n = self._n.sum(axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc_a = np.where(n > 0, self._k_a.sum(axis=axis) / n, np.nan)
            acc_b = np.where(n > 0, self._k_b.sum(axis=axis) / n, np.nan)
        return acc_a.mean(axis=0), acc_b.mean(axis=0)

    def _side_frame(self, names: list[str], axis: tuple[int, ...], label: str) -> pd.DataFrame:
        import pandas as pd

        a, b = self._accuracy(axis)
        return pd.DataFrame({"a": a, "b": b, "diff": a - b}, index=pd.Index(names, name=label))

    @property
    def by_class(self) -> pd.DataFrame:
        """Per class (index): A's and B's accuracy and the difference a - b."""
        return self._side_frame(self._class_names, (2,), "class")

    @property
    def by_subgroup(self) -> pd.DataFrame:
        """Per subgroup (index): A's and B's accuracy and the difference a - b."""
        return self._side_frame(self._subgroup_names, (1,), "subgroup")

    @property
    def by_cell(self) -> pd.DataFrame:
        """Cells with images in every seed pair: class, subgroup, accuracy_a, accuracy_b, diff
        (+ n, correct_a, correct_b for one seed pair)."""
        import pandas as pd

        present = (self._n > 0).all(axis=0)
        c, g = np.nonzero(present)
        acc_a = (self._k_a[:, c, g] / self._n[:, c, g]).mean(axis=0)
        acc_b = (self._k_b[:, c, g] / self._n[:, c, g]).mean(axis=0)
        data: dict[str, Any] = {"class": [self._class_names[i] for i in c],
                                "subgroup": [self._subgroup_names[j] for j in g]}
        if self.n_seed_pairs == 1:
            data.update(n=self._n[0, c, g], correct_a=self._k_a[0, c, g], correct_b=self._k_b[0, c, g])
        data.update(accuracy_a=acc_a, accuracy_b=acc_b, diff=acc_a - acc_b)
        return pd.DataFrame(data)

    @property
    def per_seed(self) -> pd.DataFrame | None:
        """Per metric (index) and seed pair (columns 0..S-1): the difference A_s - B_s; None for one pair."""
        import pandas as pd

        names = [name for name, entry in self.items() if "per_seed" in entry]
        if not names:
            return None
        rows = [[np.nan if v is None else v for v in self[name]["per_seed"]] for name in names]
        return pd.DataFrame(rows, index=pd.Index(names, name="metric"), dtype="float64")

    def __repr__(self) -> str:
        parts = []
        for name in ("accuracy", "macro_std_debiased"):
            if name in self and self[name]["diff"] is not None:
                ci = self[name]["ci95"]
                where = "" if ci is None else f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
                parts.append(f"Δ{name} {100 * self[name]['diff']:+.2f} %{where}")
        seeds = f"{self.n_seed_pairs} seed pairs, " if self.n_seed_pairs > 1 else ""
        return f"<PairedComparison {seeds}{len(self)} metrics" + "".join(f", {p}" for p in parts) + ">"
