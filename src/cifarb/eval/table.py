"""Plain-text summaries of a result JSON (per-subgroup table, MacroStd with CI and noise floor, worst cell)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def pct(value: float | None, digits: int = 2) -> str:
    """A fraction as percent text; an em dash for undefined values."""
    return "—" if value is None else f"{100 * value:.{digits}f}"


def ci_text(interval: Sequence[float] | None, digits: int = 2) -> str:
    return "" if interval is None else f"[{100 * interval[0]:.{digits}f}, {100 * interval[1]:.{digits}f}]"


def _ci(result: Mapping[str, Any], name: str) -> Sequence[float] | None:
    ci = result.get("ci95") or {}
    return ci.get(name)


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


def subgroup_counts(result: Mapping[str, Any]) -> dict[str, int]:
    """Images per subgroup, summed over the cells."""
    counts: dict[str, int] = {}
    for cell in result.get("cells") or []:
        counts[cell["subgroup"]] = counts.get(cell["subgroup"], 0) + int(cell["n"])
    return counts


def worst_cell(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cell behind `worst_cell_accuracy`: lowest accuracy among cells with n >= min_cell_size_worst."""
    k = int((result.get("settings") or {}).get("min_cell_size_worst", 1))
    eligible = [c for c in result.get("cells") or [] if c["n"] >= k]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (c["accuracy"], -c["n"]))


def subgroup_table(result: Mapping[str, Any]) -> str:
    """Per-subgroup images, accuracy and 95 % CI (percent)."""
    counts = subgroup_counts(result)
    cis = result.get("subgroup_accuracy_ci95") or {}
    rows = []
    for name, acc in (result.get("subgroup_accuracy") or {}).items():
        rows.append([name, f"{counts.get(name, 0):,}", pct(acc), ci_text(cis.get(name))])
    return render_table(["subgroup", "images", "accuracy %", "95% CI"], rows)


def headline(result: Mapping[str, Any], model: str | None = None) -> str:
    """First line: dataset, model, images evaluated and whether the data was verified."""
    who = f" — {model}" if model else ""
    verified = "verified" if result.get("data_verified") else "NOT verified (data_verified: false)"
    return (f"{result['dataset']}{who}: {result['n_images']:,} of {result['n_official']:,} official test "
            f"images, data {verified}")


def macro_std_lines(result: Mapping[str, Any]) -> list[str]:
    """MacroStd with CI, its noise floor and excess, then the worst cell and subgroup."""
    lines = [
        f"MacroStd {pct(result.get('macro_std'))} % {ci_text(_ci(result, 'macro_std'))}  "
        f"noise floor {pct(result.get('macro_std_null'))} %  "
        f"excess {_signed(result.get('macro_std_excess'))} pp {ci_text(_ci(result, 'macro_std_excess'))}".rstrip()
    ]
    cell = worst_cell(result)
    k = (result.get("settings") or {}).get("min_cell_size_worst")
    if cell is not None:
        lines.append(f"worst cell: {cell['class']} / {cell['subgroup']} {pct(cell['accuracy'], 1)} % "
                     f"(n={cell['n']}; cells with n >= {k}) {ci_text(_ci(result, 'worst_cell_accuracy'))}".rstrip())
    else:
        lines.append(f"worst cell: none (no cell has n >= {k})")
    sub = result.get("subgroup_accuracy") or {}
    defined = {name: v for name, v in sub.items() if v is not None}
    if defined:
        worst = min(defined, key=lambda name: defined[name])
        lines.append(f"worst subgroup: {worst} {pct(defined[worst])} %   subgroup gap "
                     f"{pct(result.get('subgroup_gap'))} pp {ci_text(_ci(result, 'subgroup_gap'))}".rstrip())
    return lines


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.2f}"


def format_result(result: Mapping[str, Any], model: str | None = None) -> str:
    """The text `cifarb eval` and `cifarb demo` print for one result JSON."""
    out = [headline(result, model)]
    out.append(f"accuracy {pct(result['accuracy'])} % {ci_text(_ci(result, 'accuracy'))}".rstrip())
    if result.get("corruptions"):
        out += ["", corruption_table(result), "", severity_table(result), "",
                "Means over all corruption x severity pairs:"]
        out += macro_std_lines(result)
        paper = (result.get("corruptions_mean") or {}).get("paper18")
        if paper is not None:
            out.append(f"paper's 18 corruptions: accuracy {pct(paper['accuracy'])} %, MacroStd "
                       f"{pct(paper['macro_std'])} %, excess {_signed(paper['macro_std_excess'])} pp")
        return "\n".join(out)
    if not result.get("cells"):  # CIFAR-10.1: no subgroups
        cis = result.get("class_accuracy_ci95") or {}
        rows = [[name, pct(acc), ci_text(cis.get(name))] for name, acc in (result.get("class_accuracy") or {}).items()]
        out += ["", render_table(["class", "accuracy %", "95% CI"], rows),
                "", "(no subgroup labels: MacroStd is not defined for this set)"]
        return "\n".join(out)
    out += ["", subgroup_table(result), ""]
    out += macro_std_lines(result)
    return "\n".join(out)


def corruption_table(result: Mapping[str, Any]) -> str:
    """One row per corruption: accuracy per severity, then MacroStd and excess averaged over severities."""
    corr = result["corruptions"]
    severities = sorted({s for by_sev in corr.values() for s in by_sev}, key=int)
    rows = []
    for name, by_sev in corr.items():
        blocks = list(by_sev.values())
        ms = _mean([b.get("macro_std") for b in blocks])
        ex = _mean([b.get("macro_std_excess") for b in blocks])
        rows.append([name, *(pct(by_sev[s]["accuracy"], 1) if s in by_sev else None for s in severities),
                     pct(ms), _signed(ex)])
    header = ["corruption", *(f"acc s{s}" for s in severities), "MacroStd %", "excess pp"]
    return render_table(header, rows)


def severity_table(result: Mapping[str, Any]) -> str:
    """Means over corruptions, one row per severity."""
    rows = []
    for sev, block in ((result.get("corruptions_mean") or {}).get("by_severity") or {}).items():
        rows.append([sev, block.get("n_pairs"), pct(block["accuracy"]), pct(block.get("macro_std")),
                     pct(block.get("macro_std_null")), _signed(block.get("macro_std_excess"))])
    return render_table(["severity", "pairs", "accuracy %", "MacroStd %", "noise floor %", "excess pp"], rows)


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None
