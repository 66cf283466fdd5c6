"""Plain-text tables of a result dict (percent, with CIs, noise floor and worst cell) for the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _pct(value: float | None, digits: int = 2) -> str:
    return "   n/a" if value is None else f"{100 * value:6.{digits}f}"


def _ci(interval: list[float] | tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"


def _worst_cells(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The cell(s) that attain worst_cell_accuracy among cells large enough to count."""
    worst = result.get("worst_cell_accuracy")
    k = (result.get("settings") or {}).get("min_cell_size_worst", 1)
    if worst is None:
        return []
    return [c for c in result.get("cells") or [] if c["n"] >= k and abs(c["accuracy"] - worst) < 1e-12]


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """The headline metrics: accuracy, MacroStd with noise floor and excess, worst cell and subgroup."""
    return [f"{name:<19}{_pct(value)} %  {_ci(interval):<17} {note}".rstrip()
            for name, value, interval, note in _summary(result)]


def summary_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """The same headline metrics as table rows (metric, percent, 95% CI, note), e.g. for an HTML table."""
    return [[name, _pct(value).strip(), _ci(interval), note] for name, value, interval, note in _summary(result)]


def _summary(result: Mapping[str, Any]) -> list[tuple[str, float | None, Any, str]]:
    ci = result.get("ci95") or {}
    rows = [("accuracy", result.get("accuracy"), ci.get("accuracy"), "")]
    if result.get("macro_std") is not None:
        floor = (f"noise floor {_pct(result.get('macro_std_null')).strip()} %, "
                 f"excess {_pct(result.get('macro_std_excess')).strip()} % {_ci(ci.get('macro_std_excess'))}")
        rows.append(("MacroStd", result["macro_std"], ci.get("macro_std"), floor))
        k = (result.get("settings") or {}).get("min_cell_size_worst")
        cells = _worst_cells(result)
        where = ", ".join(f"{c['class']} / {c['subgroup']} (n={c['n']})" for c in cells[:3])
        if result.get("corruptions"):  # -C: the top level is a mean over pairs, not one set of cells
            note = "mean over corruption x severity pairs of each pair's worst cell"
        else:
            note = where if cells else f"no cell has >= {k} images"
        rows.append(("worst cell", result.get("worst_cell_accuracy"), ci.get("worst_cell_accuracy"), note))
        sub = result.get("subgroup_accuracy") or {}
        defined = {name: v for name, v in sub.items() if v is not None}
        worst_sub = min(defined, key=defined.__getitem__) if defined else ""
        rows.append(("worst subgroup", result.get("worst_subgroup_accuracy"), ci.get("worst_subgroup_accuracy"),
                     worst_sub))
        rows.append(("subgroup gap", result.get("subgroup_gap"), ci.get("subgroup_gap"), "max - min subgroup"))
        rows.append(("mean cell accuracy", result.get("mean_cell_accuracy"), ci.get("mean_cell_accuracy"), ""))
    return rows


def subgroup_lines(result: Mapping[str, Any]) -> list[str]:
    """One row per subgroup: images, pooled accuracy and its CI."""
    sub = result.get("subgroup_accuracy")
    if not sub:
        return []
    sizes: dict[str, int] = {}
    for cell in result.get("cells") or []:
        sizes[cell["subgroup"]] = sizes.get(cell["subgroup"], 0) + int(cell["n"])
    cis = result.get("subgroup_accuracy_ci95") or {}
    width = max(8, *(len(name) for name in sub))
    lines = [f"{'subgroup':<{width}} {'n':>6} {'accuracy':>9}  95% CI"]
    for name, value in sub.items():
        lines.append(f"{name:<{width}} {sizes.get(name, 0):>6} {_pct(value):>7} %  {_ci(cis.get(name))}".rstrip())
    return lines


def corruption_lines(result: Mapping[str, Any]) -> list[str]:
    """For -C results: the means over all pairs, the paper's 18 corruptions, and each severity."""
    means = result.get("corruptions_mean")
    if not means:
        return []
    lines = [f"{'mean over':<14} {'pairs':>5} {'accuracy':>9} {'MacroStd':>9} {'floor':>7} {'excess':>7}"]
    blocks = [("all", means["all"]), ("paper 18", means.get("paper18"))]
    blocks += [(f"severity {s}", b) for s, b in (means.get("by_severity") or {}).items()]
    for label, block in blocks:
        if block is None:
            lines.append(f"{label:<14} {'-':>5}  (needs all 18 paper corruptions)")
            continue
        lines.append(f"{label:<14} {block['n_pairs']:>5} {_pct(block['accuracy']):>7} % "
                     f"{_pct(block['macro_std']):>7} % {_pct(block['macro_std_null']):>5} % "
                     f"{_pct(block['macro_std_excess']):>5} %")
    return lines


def format_result(result: Mapping[str, Any], title: str | None = None) -> str:
    """The readable report of one result dict (any dataset), as printed by `cifarb metrics`/`eval`."""
    head = title or f"{result.get('dataset', '')}: {result.get('n_images', '?')} of {result.get('n_official', '?')} images"
    settings = result.get("settings") or {}
    boot = settings.get("bootstrap", 0)
    ci_note = f"95% CI: stratified bootstrap, {boot} resamples, seed {settings.get('seed')}" if boot else "no CIs (--bootstrap 0)"
    parts = [head, ci_note, "", *summary_lines(result)]
    if result.get("macro_std") is not None:
        parts.append("MacroStd noise floor: its mean with no subgroup effect at these cell sizes; "
                     "excess = MacroStd - floor.")
        if boot:
            # resampling adds its own cell noise, so these intervals sit above (MacroStd) or below (worst
            # cases) the estimate; users ask why, so say it where the numbers are
            parts.append("CIs of MacroStd, excess, worst cases and gap are percentile intervals of biased "
                         "statistics and need not contain the estimate (docs/metrics.md).")
    sub = subgroup_lines(result)
    if sub:
        parts += ["", *sub]
    c = corruption_lines(result)
    if c:
        parts += ["", *c]
    return "\n".join(parts)
