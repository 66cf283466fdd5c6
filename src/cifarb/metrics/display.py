"""Notebook views of a result dict: one-line repr, HTML table, and per-class / per-subgroup frames.

Pure functions of the result JSON (no I/O): `SubgroupMetrics` and `cifarb.eval.evaluation.Evaluation`
render through them. Frames use ordered categoricals for the class and subgroup columns, in the
result's own order, and carry the CI columns; keys a result lacks are shown as missing ("—").
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cifarb.metrics.catalog import BY_KEY, METRICS

if TYPE_CHECKING:
    import pandas as pd

# headline scalars (key, label), in catalogue order as shown by repr/HTML; keys a result lacks (e.g.
# written before they existed) are shown as missing, never an error
HEADLINE: tuple[tuple[str, str], ...] = tuple((m.key, m.label) for m in METRICS)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.2f} %"


def _value(key: str, value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value):.3g}" if BY_KEY[key].format == "p-value" else _pct(value)


def _ci(interval: Any) -> str:
    return "" if not interval else f"[{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"


def short_repr(result: Mapping[str, Any], kind: str = "Evaluation") -> str:
    """One line: dataset, images, accuracy and MacroStd with its floor."""
    n = result.get("n_images")
    parts = [f"{kind} {result.get('dataset', '?')}", f"{n:,} images" if isinstance(n, int) else "? images",
             f"accuracy {_pct(result.get('accuracy'))}"]
    if result.get("macro_std") is not None:
        debiased = f", debiased {_pct(result['macro_std_debiased'])}" if result.get("macro_std_debiased") is not None else ""
        parts.append(f"MacroStd {_pct(result.get('macro_std'))} (floor {_pct(result.get('macro_std_null'))}, "
                     f"excess {_pct(result.get('macro_std_excess'))}{debiased})")
    return "<" + ", ".join(parts) + ">"


def html_table(result: Mapping[str, Any], kind: str = "Evaluation") -> str:
    """A small escaped HTML table of the headline metrics and their 95% CIs (Jupyter's rich display)."""
    ci = result.get("ci95") or {}
    rows = []
    for key, label in HEADLINE:
        if key not in result and BY_KEY[key].required:  # optional keys (newer than the result) show as missing
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


def ordered(values: list[str], order: list[str]) -> Any:
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


def group_frame(result: Mapping[str, Any], what: str) -> pd.DataFrame:
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
        col: ordered(order, order),
        "n": np.array([sizes[name] for name in order], dtype=np.int64),
        "correct": np.array([round(correct[name]) for name in order], dtype=np.int64),
        "accuracy": [np.nan if acc.get(name) is None else float(acc[name]) for name in order],
        "ci_lo": [np.nan if not cis.get(name) else float(cis[name][0]) for name in order],
        "ci_hi": [np.nan if not cis.get(name) else float(cis[name][1]) for name in order],
    })
    return frame
