"""Text `cifarb eval` prints: the shared result table of `cifarb.metrics.table` plus model, data and per-corruption lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cifarb.metrics.catalog import BY_KEY

_EXCESS = BY_KEY["macro_std_excess"]  # shown in signed points


def pct(value: float | None, digits: int = 2) -> str:
    """A fraction as percent text; an em dash for undefined values."""
    return "—" if value is None else f"{100 * value:.{digits}f}"


def ci_text(interval: Sequence[float] | None, digits: int = 2) -> str:
    return "" if interval is None else f"[{100 * interval[0]:.{digits}f}, {100 * interval[1]:.{digits}f}]"


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned first column and right-aligned others, separated by two spaces."""
    cells = [[str(h) for h in header]] + [["—" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def worst_cell(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cell behind `worst_cell_accuracy` (the larger one on ties), or None if no cell qualifies."""
    k = int((result.get("settings") or {}).get("min_cell_size_worst", 1))
    eligible = [c for c in result.get("cells") or [] if c["n"] >= k]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (c["accuracy"], -c["n"]))


def headline(result: Mapping[str, Any], model: str | None = None) -> str:
    """Dataset, model, images evaluated and whether every input file was verified."""
    who = f" — model {model}" if model else ""
    verified = "verified" if result.get("data_verified") else "NOT verified (data_verified: false)"
    return (f"{result['dataset']}{who}: {result['n_images']:,} of {result['n_official']:,} official test "
            f"images, data {verified}")


def summary_line(result: Mapping[str, Any]) -> str:
    """One line in the units `eval` prints: accuracy and MacroStd in percent, the excess in points."""
    text = f"{result['dataset']}: accuracy {pct(result.get('accuracy'))} %"
    if result.get("macro_std") is not None:
        text += f", MacroStd {pct(result['macro_std'])} %"
        ex = result.get("macro_std_excess")
        if ex is not None:
            text += f" (noise floor {pct(result.get('macro_std_null'))} %, excess {_EXCESS.text(ex)} pp)"
    return text


def corruption_table(result: Mapping[str, Any]) -> str:
    """One row per corruption: accuracy at each severity, then D, MacroStd and excess averaged over severities."""
    corr = result["corruptions"]
    severities = sorted({s for by_sev in corr.values() for s in by_sev}, key=int)
    rows = []
    for name, by_sev in corr.items():
        blocks = list(by_sev.values())
        d = _mean([b.get("macro_std_debiased") for b in blocks])
        ms = _mean([b.get("macro_std") for b in blocks])
        ex = _mean([b.get("macro_std_excess") for b in blocks])
        rows.append([name, *(pct(by_sev[s]["accuracy"], 1) if s in by_sev else None for s in severities),
                     pct(d), pct(ms), None if ex is None else _EXCESS.text(ex)])
    return render_table(["corruption", *(f"acc% s{s}" for s in severities), "D %", "MacroStd %", "excess pp"], rows)


def class_table(result: Mapping[str, Any]) -> str:
    cis = result.get("class_accuracy_ci95") or {}
    rows = [[name, pct(acc), ci_text(cis.get(name))] for name, acc in (result.get("class_accuracy") or {}).items()]
    return render_table(["class", "accuracy %", "95% CI"], rows)


def eval_text(result: Mapping[str, Any], model: str | None = None) -> str:
    """The full text for one result: `cifarb.metrics.table.format_result` (as `cifarb metrics` prints it),
    headed by the model and data status, plus a per-corruption table (-C) or per-class table (no subgroups)."""
    from cifarb.metrics.table import format_result

    parts = [format_result(result, title=headline(result, model))]
    if result.get("corruptions"):
        parts += ["", "per corruption (D, MacroStd and excess: means over severities):", corruption_table(result)]
    elif not result.get("cells"):
        parts += ["", class_table(result), "", "(no subgroup labels: MacroStd is not defined for this set)"]
    return "\n".join(parts)


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None
