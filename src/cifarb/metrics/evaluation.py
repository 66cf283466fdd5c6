"""`Evaluation`: a result JSON with the views a notebook user wants (repr, HTML, summary, frames).

`cifarb.evaluate` and `cifarb.evaluate_predictions` return one; `Evaluation.from_json(path)` reads a
saved result. `.to_dict()` is the result JSON unchanged (DESIGN.md result contract), so nothing that
reads results changes. The frames are built from the JSON alone (plus cell CIs when the
`SubgroupMetrics` behind it is at hand) and use ordered categoricals for the class and subgroup
columns, in the result's own order.
"""

from __future__ import annotations

import copy
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from cifarb.metrics.core import SubgroupMetrics

# headline scalars, in the order shown by repr/HTML; keys a result lacks (e.g. written before they
# existed) are shown as missing, never an error
HEADLINE: tuple[tuple[str, str], ...] = (
    ("accuracy", "accuracy"),
    ("macro_std", "MacroStd"),
    ("macro_std_null", "MacroStd noise floor"),
    ("macro_std_excess", "MacroStd excess"),
    ("macro_std_debiased", "MacroStd debiased"),
    ("p_subgroup_effect", "p (no subgroup effect)"),
    ("worst_cell_accuracy", "worst cell"),
    ("worst_subgroup_accuracy", "worst subgroup"),
    ("subgroup_gap", "subgroup gap"),
    ("mean_cell_accuracy", "mean cell accuracy"),
)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.2f} %"


def _value(key: str, value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value):.3g}" if key == "p_subgroup_effect" else _pct(value)


def _ci(interval: Any) -> str:
    return "" if not interval else f"[{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"


def short_repr(result: Mapping[str, Any], kind: str = "Evaluation") -> str:
    """One line: dataset, images, accuracy and MacroStd with its floor."""
    n = result.get("n_images")
    parts = [f"{kind} {result.get('dataset', '?')}", f"{n:,} images" if isinstance(n, int) else "? images",
             f"accuracy {_pct(result.get('accuracy'))}"]
    if result.get("macro_std") is not None:
        parts.append(f"MacroStd {_pct(result.get('macro_std'))} (floor {_pct(result.get('macro_std_null'))}, "
                     f"excess {_pct(result.get('macro_std_excess'))})")
    return "<" + ", ".join(parts) + ">"


def html_table(result: Mapping[str, Any], kind: str = "Evaluation") -> str:
    """A small escaped HTML table of the headline metrics and their 95% CIs (Jupyter's rich display)."""
    ci = result.get("ci95") or {}
    rows = []
    for key, label in HEADLINE:
        if key not in result and key not in ("macro_std_debiased", "p_subgroup_effect"):
            continue
        rows.append(f"<tr><td>{html.escape(label)}</td><td style='text-align:right'>"
                    f"{html.escape(_value(key, result.get(key)))}</td><td>{html.escape(_ci(ci.get(key)))}</td></tr>")
    head = html.escape(f"{kind}: {result.get('dataset', '?')}, {result.get('n_images', '?'):,} of "
                       f"{result.get('n_official', '?'):,} images"
                       if isinstance(result.get("n_images"), int) and isinstance(result.get("n_official"), int)
                       else f"{kind}: {result.get('dataset', '?')}")
    boot = (result.get("settings") or {}).get("bootstrap")
    note = f"95% CI: stratified bootstrap, {boot} resamples" if boot else "no CIs"
    return (f"<div><strong>{head}</strong><table><thead><tr><th>metric</th><th>value</th>"
            f"<th>95% CI</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<small>{html.escape(note)}; — = not defined or not recorded</small></div>")


def _ordered(values: list[str], order: list[str]) -> Any:
    import pandas as pd

    return pd.Categorical(values, categories=order, ordered=True)


def class_order(result: Mapping[str, Any]) -> list[str]:
    seen = list((result.get("class_accuracy") or {}).keys())
    for cell in result.get("cells") or []:
        if cell["class"] not in seen:
            seen.append(cell["class"])
    return seen


def subgroup_order(result: Mapping[str, Any]) -> list[str]:
    names = list((result.get("settings") or {}).get("subgroup_names") or (result.get("subgroup_accuracy") or {}))
    for cell in result.get("cells") or []:
        if cell["subgroup"] not in names:
            names.append(cell["subgroup"])
    return names


def _group_frame(result: Mapping[str, Any], what: str) -> pd.DataFrame:
    """Per class or per subgroup: n, correct, accuracy, ci_lo, ci_hi (NaN where undefined)."""
    import numpy as np
    import pandas as pd

    col = "class" if what == "class" else "subgroup"
    order = class_order(result) if what == "class" else subgroup_order(result)
    acc = result.get(f"{col}_accuracy") or {}
    cis = result.get(f"{col}_accuracy_ci95") or {}
    sizes = dict.fromkeys(order, 0)
    correct = dict.fromkeys(order, 0.0)
    for cell in result.get("cells") or []:
        sizes[cell[col]] += int(cell["n"])
        correct[cell[col]] += cell["n"] * cell["accuracy"]
    frame = pd.DataFrame({
        col: _ordered(order, order),
        "n": np.array([sizes[name] for name in order], dtype=np.int64),
        "correct": np.array([round(correct[name]) for name in order], dtype=np.int64),
        "accuracy": [np.nan if acc.get(name) is None else float(acc[name]) for name in order],
        "ci_lo": [np.nan if not cis.get(name) else float(cis[name][0]) for name in order],
        "ci_hi": [np.nan if not cis.get(name) else float(cis[name][1]) for name in order],
    })
    return frame


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
        """The result JSON (DESIGN.md contract), as `cifarb eval --json` writes it; a deep copy."""
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

        return format_result(self.result)

    @property
    def by_class(self) -> pd.DataFrame:
        """One row per class: class (ordered categorical), n, correct, accuracy, ci_lo, ci_hi."""
        return _group_frame(self.result, "class")

    @property
    def by_subgroup(self) -> pd.DataFrame:
        """One row per subgroup (pooled over classes): subgroup, n, correct, accuracy, ci_lo, ci_hi."""
        return _group_frame(self.result, "subgroup")

    @property
    def by_cell(self) -> pd.DataFrame:
        """Non-empty (class, subgroup) cells: class, subgroup (ordered categoricals), n, accuracy
        (+ ci_lo, ci_hi when the bootstrap ran in this process)."""
        import numpy as np
        import pandas as pd

        cells = self.result.get("cells") or []
        frame = pd.DataFrame({
            "class": _ordered([c["class"] for c in cells], class_order(self.result)),
            "subgroup": _ordered([c["subgroup"] for c in cells], subgroup_order(self.result)),
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
