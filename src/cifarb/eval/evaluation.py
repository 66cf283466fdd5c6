"""`Evaluation`: a result JSON with the views a notebook user wants (repr, HTML, summary, frames).

`cifarb.evaluate` and `cifarb.evaluate_predictions` return one; `Evaluation.from_json(path)` reads a
saved result. `.to_dict()` is the result JSON unchanged (the result contract, cifarb/schemas/result.schema.json), so nothing that
reads results changes. The frames are built from the JSON alone (plus cell CIs when the
`SubgroupMetrics` behind it is at hand); rendering lives in `cifarb.metrics.display`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifarb.metrics.display import (
    HEADLINE,
    class_order,
    group_frame,
    html_table,
    ordered,
    short_repr,
    subgroup_order,
)

if TYPE_CHECKING:
    import pandas as pd

    from cifarb.metrics.core import SubgroupMetrics


@dataclass
class Evaluation:
    """The result of evaluating one prediction set: the result JSON plus notebook-friendly views.

    Example::

        >>> import cifarb
        >>> ev = cifarb.evaluate_predictions(preds, dataset="cifar10-b")   # doctest: +SKIP
        >>> ev.macro_std_excess, ev.ci95["macro_std"]                       # doctest: +SKIP
        >>> ev.by_subgroup                     # DataFrame: subgroup, n, correct, accuracy, ci_lo, ci_hi
        >>> ev.to_dict() == json.load(open("result.json"))                 # the contract JSON

    Attribute access reaches every top-level key of the result (`ev.accuracy`, `ev.cells`, ...).
    `metrics` is the `SubgroupMetrics` behind it when computed in this process (None for a loaded
    file or a -C result); `predictions` is the per-image frame when a model was evaluated.
    """

    result: dict[str, Any]
    metrics: SubgroupMetrics | None = field(default=None, repr=False)
    predictions: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, path: str | Path) -> Evaluation:
        """Read a result JSON written by `cifarb eval/metrics --json` or found in RUNDIR/eval/."""
        from cifarb.errors import CifarbError

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CifarbError(f"cannot read result {path}: {exc}; give a result JSON file") from None
        if not isinstance(data, dict) or "dataset" not in data:
            raise CifarbError(f"{path} is not a cifarb result JSON (no 'dataset' key)")
        return cls(data)

    def to_dict(self) -> dict[str, Any]:
        """The result JSON (cifarb/schemas/result.schema.json), as `cifarb eval --json` writes it; a deep copy."""
        return copy.deepcopy(self.result)

    def to_json(self, path: str | Path) -> Path:
        """Write the result JSON atomically."""
        from cifarb._atomic import atomic_write_json

        atomic_write_json(path, self.result)
        return Path(path)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: expose the result's keys as attributes
        result = self.__dict__.get("result")
        if result is not None and name in result:
            return result[name]
        if name in dict(HEADLINE):  # a key this result predates: missing, not an error
            return None
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r} (result keys: "
                             f"{', '.join(result or {})})")

    def __getitem__(self, key: str) -> Any:
        return self.result[key]

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.result))

    def __repr__(self) -> str:
        return short_repr(self.result)

    def _repr_html_(self) -> str:
        return html_table(self.result)

    def summary(self) -> str:
        """The readable report that `cifarb metrics` / `cifarb eval` print."""
        from cifarb.metrics.table import format_result

        r = self.result
        title = None
        if isinstance(r.get("n_images"), int) and isinstance(r.get("n_official"), int):
            title = f"{r.get('dataset', '?')}: {r['n_images']:,} of {r['n_official']:,} images"
        return format_result(r, title=title)

    @property
    def by_class(self) -> pd.DataFrame:
        """One row per class: class (ordered categorical), n, correct, accuracy, ci_lo, ci_hi."""
        return group_frame(self.result, "class")

    @property
    def by_subgroup(self) -> pd.DataFrame:
        """One row per subgroup (pooled over classes): subgroup, n, correct, accuracy, ci_lo, ci_hi."""
        return group_frame(self.result, "subgroup")

    @property
    def by_cell(self) -> pd.DataFrame:
        """Non-empty (class, subgroup) cells: class, subgroup (ordered categoricals), n, accuracy
        (+ ci_lo, ci_hi when the bootstrap ran in this process)."""
        import numpy as np
        import pandas as pd

        cells = self.result.get("cells") or []
        frame = pd.DataFrame({
            "class": ordered([c["class"] for c in cells], class_order(self.result)),
            "subgroup": ordered([c["subgroup"] for c in cells], subgroup_order(self.result)),
            "n": np.array([c["n"] for c in cells], dtype=np.int64),
            "accuracy": np.array([c["accuracy"] for c in cells], dtype=np.float64),
        })
        if self.metrics is not None and self.metrics.cell_ci95 is not None:
            m = self.metrics
            ci = {(m.class_names[i], m.subgroup_names[j]): (m.cell_ci95[0][i, j], m.cell_ci95[1][i, j])
                  for i, j in zip(*np.nonzero(m.n > 0))}
            frame["ci_lo"] = [ci[(c["class"], c["subgroup"])][0] for c in cells]
            frame["ci_hi"] = [ci[(c["class"], c["subgroup"])][1] for c in cells]
        return frame

    def cell_matrix(self) -> pd.DataFrame:
        """Accuracy as a class x subgroup table (NaN for empty cells)."""
        frame = self.by_cell
        return frame.pivot_table(index="class", columns="subgroup", values="accuracy", observed=False,
                                 aggfunc="first", dropna=False)
