"""Plain-text tables of a result dict (percent, with CIs, debiased MacroStd and its test, noise floor, worst cell) for the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cifarb.metrics.catalog import BY_KEY


def _pct(value: float | None, digits: int = 2) -> str:
    return "     —" if value is None else f"{100 * value:6.{digits}f}"


def _ci(interval: list[float] | tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"


def _outside(value: float | None, interval: list[float] | tuple[float, float] | None) -> bool:
    """True when a printed interval does not contain its estimate (only in results of older cifarb)."""
    return value is not None and interval is not None and not interval[0] - 1e-12 <= value <= interval[1] + 1e-12


def p_text(p: float | None) -> str:
    """A p-value as text: three decimals, scientific below 0.001, an em dash when absent."""
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _worst_cells(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The cell(s) that attain worst_cell_accuracy among cells large enough to count."""
    worst = result.get("worst_cell_accuracy")
    k = (result.get("settings") or {}).get("min_cell_size_worst", 1)
    if worst is None:
        return []
    return [c for c in result.get("cells") or [] if c["n"] >= k and abs(c["accuracy"] - worst) < 1e-12]


def small_cells_warning(result: Mapping[str, Any]) -> str | None:
    """A warning when most (class, subgroup) cells hold fewer than 10 images and worst cells count from < 30.

    Then the worst cell is the minimum over many small, noisy cells and reads far below the truth
    (docs/bench/calibration.md measures the bias on the 1,017-image sample and CIFAR100-B). Cells are
    counted over the whole class x subgroup grid, empty ones (0 images) included: CIFAR100-B has 360 of
    its 722 non-empty cells below 10 images, and 438 of its 800 grid cells.
    """
    cells = result.get("cells") or []
    k = int((result.get("settings") or {}).get("min_cell_size_worst", 10))
    grid = len(result.get("class_accuracy") or {}) * len(result.get("subgroup_accuracy") or {})
    small = grid - sum(1 for c in cells if c["n"] >= 10)
    if not cells or k >= 30 or 2 * small <= grid:
        return None
    return (f"warning: {small} of the {grid} class x subgroup cells hold fewer than 10 images; the worst of the "
            f"cells with >= {k} images reads well below the truth here (docs/metrics.md): consider "
            "--min-cell-size-worst 30")


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """The headline metrics: accuracy, debiased MacroStd with its p-value, the paper's MacroStd with noise
    floor and excess, worst cell and subgroup, gap, mean cell accuracy."""
    lines = []
    for name, value, interval, note in _summary(result):
        shown = f"{_pct(value)} %" if value is not None else f"{'—':>6}  "
        lines.append(f"{name:<19}{shown}  {_ci(interval):<17} {note}".rstrip())
    return lines


def summary_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """The same headline metrics as table rows (metric, percent, 95% CI, note), e.g. for an HTML table."""
    return [[name, _pct(value).strip() if value is not None else "—", _ci(interval), note]
            for name, value, interval, note in _summary(result)]


def _row(result: Mapping[str, Any], key: str, note: str) -> tuple[str, float | None, Any, str]:
    """(catalogue label, value, 95% interval, note) of one metric."""
    return (BY_KEY[key].label, result.get(key), (result.get("ci95") or {}).get(key), note)


def _summary(result: Mapping[str, Any]) -> list[tuple[str, float | None, Any, str]]:
    ci = result.get("ci95") or {}
    rows = [_row(result, "accuracy", "")]
    if result.get("macro_std") is not None:
        if "macro_std_debiased" in result:
            perms = (result.get("settings") or {}).get("permutations")
            test = (f"; p(no subgroup effect) = {p_text(result.get('p_subgroup_effect'))}"
                    f"{f' ({perms} permutations)' if result.get('p_subgroup_effect') is not None else ''}")
            note = "estimate of the true MacroStd" + test
        else:
            note = "not in this result (written by an older cifarb)"
        rows.append(_row(result, "macro_std_debiased", note))
        floor = (f"paper's plug-in; noise floor {_pct(result.get('macro_std_null')).strip()} %, "
                 f"excess {_pct(result.get('macro_std_excess')).strip()} % {_ci(ci.get('macro_std_excess'))}")
        rows.append(_row(result, "macro_std", floor.rstrip()))
        k = (result.get("settings") or {}).get("min_cell_size_worst")
        cells = _worst_cells(result)
        where = ", ".join(f"{c['class']} / {c['subgroup']} (n={c['n']})" for c in cells[:3])
        if result.get("corruptions"):  # -C: the top level is a mean over pairs, not one set of cells
            note = "mean over corruption x severity pairs of each pair's worst cell"
        else:
            note = where if cells else f"no cell has >= {k} images"
        rows.append(_row(result, "worst_cell_accuracy", note))
        sub = result.get("subgroup_accuracy") or {}
        defined = {name: v for name, v in sub.items() if v is not None}
        worst_sub = min(defined, key=defined.__getitem__) if defined else ""
        rows.append(_row(result, "worst_subgroup_accuracy", worst_sub))
        rows.append(_row(result, "subgroup_gap", "max - min subgroup"))
        rows.append(_row(result, "mean_cell_accuracy", ""))
    out = []
    for name, value, interval, note in rows:
        if _outside(value, interval):  # older results: a percentile CI of a biased statistic
            note = f"{note}; CI from an older cifarb, need not contain the estimate".lstrip("; ")
        out.append((name, value, interval, note))
    return out


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
    lines = [f"{'mean over':<14} {'pairs':>5} {'accuracy':>9} {'D':>7} {'MacroStd':>9} {'floor':>7} {'excess':>7}"]
    blocks = [("all", means["all"]), ("paper 18", means.get("paper18"))]
    blocks += [(f"severity {s}", b) for s, b in (means.get("by_severity") or {}).items()]
    for label, block in blocks:
        if block is None:
            lines.append(f"{label:<14} {'-':>5}  (needs all 18 paper corruptions)")
            continue
        lines.append(f"{label:<14} {block['n_pairs']:>5} {_pct(block['accuracy']):>7} % "
                     f"{_pct(block.get('macro_std_debiased')):>5} % "
                     f"{_pct(block['macro_std']):>7} % {_pct(block['macro_std_null']):>5} % "
                     f"{_pct(block['macro_std_excess']):>5} %")
    return lines


def format_result(result: Mapping[str, Any], title: str | None = None) -> str:
    """The readable report of one result dict (any dataset), as printed by `cifarb metrics`/`eval`."""
    head = title or f"{result.get('dataset', '')}: {result.get('n_images', '?')} of {result.get('n_official', '?')} images"
    settings = result.get("settings") or {}
    boot = settings.get("bootstrap", 0)
    ci_note = (f"95% CIs (methods below); stratified bootstrap {boot} resamples, seed {settings.get('seed')}" if boot
               else "no CIs and no p-value (--bootstrap 0)")
    parts = [head, ci_note, "", *summary_lines(result)]
    if result.get("macro_std") is not None:
        parts.append("The debiased MacroStd (D) removes each cell's binomial noise and estimates the model's true "
                     "MacroStd; MacroStd is the paper's plug-in, kept for comparability, and the noise floor is "
                     "its mean with no subgroup effect at these cell sizes (excess = MacroStd - floor, descriptive).")
        if boot:
            parts.append("CIs: accuracy stratified bootstrap; D test inversion (covers the true MacroStd); MacroStd "
                         "and excess re-centred percentile (cover their own expectation at this composition, not the "
                         "model's spread); worst cell / subgroup min-of-Wilson; gap Newcombe; mean cell accuracy "
                         "normal; class and subgroup accuracies Wilson (docs/metrics.md).")
        warning = small_cells_warning(result)
        if warning:
            parts.append(warning)
    sub = subgroup_lines(result)
    if sub:
        parts += ["", *sub]
    c = corruption_lines(result)
    if c:
        parts += ["", *c]
    return "\n".join(parts)
