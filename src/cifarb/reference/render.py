"""The reference table as text, CSV, Markdown and a self-contained HTML page with its figure."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from cifarb.errors import CifarbError

# sort keys -> (row key, descending by default)
SORT_KEYS: dict[str, tuple[str, bool]] = {
    "accuracy": ("accuracy", True),
    "discrepancy": ("discrepancy", False),
    "macro_std": ("macro_std", False),
    "excess": ("macro_std_excess", False),
    "adjusted": ("macro_std_adjusted", False),
    "cifar10.1": ("cifar10_1_v6_accuracy", True),
    "cifar10.1-v4": ("cifar10_1_v4_accuracy", True),
    "drop": ("drop_v6", False),
    "name": ("name", False),
}


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}"


def _pp(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:+.{digits}f}"


def _ci(interval: Sequence[float] | None, digits: int = 2) -> str:
    return "" if not interval else f"[{100 * interval[0]:.{digits}f}, {100 * interval[1]:.{digits}f}]"


def _p(value: float | None) -> str:
    return "—" if value is None else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def sorted_rows(table: Mapping[str, Any], sort: str = "accuracy", reverse: bool = False) -> list[dict[str, Any]]:
    """The table's rows sorted by `sort` (a SORT_KEYS name); missing values go last."""
    if sort not in SORT_KEYS:
        raise CifarbError(f"unknown sort key {sort!r}; choose one of {', '.join(SORT_KEYS)}")
    key, desc = SORT_KEYS[sort]
    desc = desc != reverse
    rows = list(table["models"])
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    return sorted(present, key=lambda r: r[key], reverse=desc) + missing


def disc_label(table: Mapping[str, Any]) -> str:
    return "debiased MacroStd" if table.get("discrepancy_key") == "macro_std_debiased" else "MacroStd"


HEADER = ("model", "acc %", "acc 95% CI", "MacroStd %", "floor %", "excess %", "discrepancy %", "disc. 95% CI",
          "p", "adjusted pp", "worst subgroup", "10.1 v6 %", "10.1 v4 %", "drop v6 pp", "rank acc", "rank disc")


def _cells(r: Mapping[str, Any]) -> list[str]:
    worst = "—" if r.get("worst_subgroup") is None else f"{r['worst_subgroup']} {_pct(r['worst_subgroup_accuracy'], 1)}"
    name = r["name"] + (" *" if r["added"] else "")
    return [name, _pct(r["accuracy"]), _ci((r.get("ci95") or {}).get("accuracy")), _pct(r["macro_std"]),
            _pct(r["macro_std_null"]), _pp(r["macro_std_excess"]), _pct(r["discrepancy"]),
            _ci(r.get("discrepancy_ci95")), _p(r.get("p_subgroup_effect")), _pp(r.get("macro_std_adjusted")), worst,
            _pct(r["cifar10_1_v6_accuracy"]), _pct(r["cifar10_1_v4_accuracy"]), _pp(r["drop_v6"]),
            str(r["rank_accuracy"]), "—" if r["rank_discrepancy"] is None else str(r["rank_discrepancy"])]


def header_lines(table: Mapping[str, Any]) -> list[str]:
    s = table["settings"]
    boot = s.get("bootstrap", 0)
    lines = [
        f"CIFAR10-B reference models: {sum(not r['added'] for r in table['models'])} published classifiers"
        f" + {sum(r['added'] for r in table['models'])} added, on {table['n_images']:,} of {table['n_official']:,} "
        "test images",
        f"discrepancy = {disc_label(table)} ({table['discrepancy_key']}); "
        + (f"95% CIs: stratified bootstrap, {boot} resamples, seed {s.get('seed')}" if boot else
           "no CIs (--bootstrap 0)"),
        "CIFAR-10.1 accuracies (full v4/v6 sets): " + ", ".join(f"{v} {how}" for v, how in s["cifar10_1"].items())
        + "; drop = full CIFAR-10 accuracy - CIFAR-10.1 v6",
        "adjusted = discrepancy minus what accuracy alone predicts over the reference models (docs/metrics.md)",
    ]
    lines += [f"note: {n}" for n in table.get("notes", [])]
    return lines


def text_table(table: Mapping[str, Any], sort: str = "accuracy", reverse: bool = False) -> str:
    from cifarb.eval.table import render_table

    rows = sorted_rows(table, sort, reverse)
    parts = [*header_lines(table), "", render_table(HEADER, [_cells(r) for r in rows])]
    if any(r["added"] for r in rows):
        parts.append("* added model")
    parts.append("per-subgroup accuracies: --csv, --format md, --html or --json")
    for comp in table.get("comparisons", []):
        parts += ["", *comparison_lines(comp)]
    return "\n".join(parts)


def comparison_lines(comp: Mapping[str, Any], only: Sequence[str] | None = None) -> list[str]:
    """A paired comparison as `compare` prints it: a - b with the 95 % CI of the difference (`only`: these metrics)."""
    lines = [f"paired comparison: {comp['a']} - {comp['b']} ({comp['why']}), {comp['n_images']:,} images, "
             f"{comp['bootstrap']} paired resamples"]
    for name, m in comp["metrics"].items():
        if m.get("diff") is None or (only is not None and name not in only):
            continue
        ci = m.get("ci95")
        verdict = ""
        if ci:
            verdict = "  (CI excludes 0)" if ci[0] > 0 or ci[1] < 0 else "  (CI includes 0)"
        lines.append(f"  {name:<24} {_pct(m['a']):>7} {_pct(m['b']):>7}  diff {_pp(m['diff']):>7} pp "
                     f"{_ci(ci)}{verdict}")
    return lines


def rank_lines(table: Mapping[str, Any]) -> list[str]:
    """Where each added model falls: its rank by accuracy and by discrepancy among all rows."""
    n = len(table["models"])
    out = []
    for r in table["models"]:
        if r["added"]:
            out.append(f"{r['name']}: rank {r['rank_accuracy']} of {n} by accuracy ({_pct(r['accuracy'])} %), "
                       f"rank {r['rank_discrepancy']} of {n} by {disc_label(table)} ({_pct(r['discrepancy'])} %; "
                       f"1 = lowest), accuracy-adjusted {_pp(r.get('macro_std_adjusted'))} pp")
    return out


def analysis_lines(table: Mapping[str, Any]) -> list[str]:
    """The headline correlations over models, with their bootstrap CIs."""
    a = table.get("analysis") or {}
    info = table.get("analysis_info") or {}
    lines = [f"Correlations over {info.get('n_rows', '?')} models (95% CI: {info.get('bootstrap')} bootstrap "
             "resamples of the models)"]
    wanted = [
        ("pearson__macro_std__accuracy", "MacroStd vs CIFAR-10 accuracy"),
        ("pearson__accuracy__cifar10_1_v6_accuracy", "CIFAR-10 accuracy vs CIFAR-10.1 v6 accuracy"),
    ]
    for x, label in (("macro_std", "MacroStd"), ("macro_std_excess", "excess"),
                     ("macro_std_debiased", "debiased MacroStd"), ("macro_std_adjusted", "adjusted discrepancy")):
        wanted += [(f"pearson__{x}__cifar10_1_v6_accuracy", f"{label} vs CIFAR-10.1 v6 accuracy"),
                   (f"spearman__{x}__cifar10_1_v6_accuracy", f"{label} vs CIFAR-10.1 v6 accuracy (Spearman)"),
                   (f"pearson__{x}__drop_v6", f"{label} vs 10 -> 10.1 v6 drop"),
                   (f"partial_pearson__{x}__cifar10_1_v6_accuracy__given__accuracy",
                    f"{label} vs CIFAR-10.1 v6 accuracy | CIFAR-10 accuracy (partial)"),
                   (f"partial_spearman__{x}__cifar10_1_v6_accuracy__given__accuracy",
                    f"{label} vs CIFAR-10.1 v6 accuracy | CIFAR-10 accuracy (partial Spearman)")]
    width = max(len(label) for _, label in wanted)
    for key, label in wanted:
        c = a.get(key)
        if c is None:
            continue
        ci = "" if not c["ci95"] else f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
        r = "—" if c["r"] is None else f"{c['r']:+.3f}"
        lines.append(f"  {label:<{width}}  r = {r} {ci}  (n={c['n']})")
    fit = info.get("adjusted_fit")
    if fit:
        lines.append(f"  adjusted = discrepancy - ({100 * fit['alpha']:.3f} + {100 * fit['beta']:.3f} * "
                     f"sqrt(1 - accuracy)) %, fitted over {fit['n_models']} reference models")
    lines.append("  every correlation is in --json under analysis (names listed in docs/reference-models.md)")
    return lines


def _flat(r: Mapping[str, Any], subgroups: Sequence[str]) -> dict[str, Any]:
    ci = r.get("discrepancy_ci95") or [None, None]
    acc_ci = (r.get("ci95") or {}).get("accuracy") or [None, None]
    out = {k: r.get(k) for k in ("name", "display_name", "family", "added", "n_images", "accuracy")}
    out.update(accuracy_ci_lo=acc_ci[0], accuracy_ci_hi=acc_ci[1])
    for k in ("macro_std", "macro_std_null", "macro_std_excess", "macro_std_debiased", "discrepancy"):
        out[k] = r.get(k)
    out.update(discrepancy_ci_lo=ci[0], discrepancy_ci_hi=ci[1])
    for k in ("p_subgroup_effect", "macro_std_adjusted", "worst_subgroup", "worst_subgroup_accuracy",
              "cifar10_full_accuracy", "cifar10_1_v4_accuracy", "cifar10_1_v6_accuracy", "drop_v4", "drop_v6",
              "rank_accuracy", "rank_discrepancy"):
        out[k] = r.get(k)
    for g in subgroups:
        out[f"subgroup_{g}"] = r["subgroup_accuracy"].get(g)
    return out


def csv_text(table: Mapping[str, Any], sort: str = "accuracy", reverse: bool = False) -> str:
    """One row per model, fractions as stored (empty = undefined)."""
    subgroups = table["settings"]["subgroup_names"]
    rows = [_flat(r, subgroups) for r in sorted_rows(table, sort, reverse)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


MD_HEADER = ("model", "family", "acc %", "MacroStd %", "floor %", "excess pp", "discrepancy % [95% CI]", "p",
             "adjusted pp", "worst subgroup", "10.1 v6 %", "10.1 v4 %", "drop v6 pp")


def _md_cells(r: Mapping[str, Any], subgroups: Sequence[str]) -> list[str]:
    c = _cells(r)
    disc = f"{c[6]} {c[7]}".strip()
    return [f"`{r['name']}`" + (" (added)" if r["added"] else ""), str(r.get("family", "")), c[1], c[3], c[4], c[5],
            disc, c[8], c[9], c[10], c[11], c[12], c[13],
            *(_pct(r["subgroup_accuracy"].get(g), 1) for g in subgroups)]


def markdown_table(table: Mapping[str, Any], sort: str = "accuracy", reverse: bool = False) -> str:
    subgroups = list(table["settings"]["subgroup_names"])
    header = [*MD_HEADER, *subgroups]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(_md_cells(r, subgroups)) + " |" for r in sorted_rows(table, sort, reverse)]
    return "\n".join(lines) + "\n"


def scatter_png(table: Mapping[str, Any]) -> bytes:
    """Three panels: accuracy vs MacroStd (CI bars, noise-floor band), discrepancy vs CIFAR-10.1 v6
    accuracy, and the accuracy-adjusted discrepancy vs the 10 -> 10.1 drop. Added models are stars."""
    import numpy as np
    from matplotlib.figure import Figure

    from cifarb.report.figures import _colours, _png

    rows = list(table["models"])
    families = list(dict.fromkeys(r["family"] for r in rows if not r["added"]))
    if len(families) <= 10:
        colours = dict(zip(families, _colours(len(families)), strict=True))
    else:  # tab20's dark shades first, then the light ones: neighbouring families stay distinguishable
        import matplotlib

        cmap = matplotlib.colormaps["tab20"]
        order = [*range(0, 20, 2), *range(1, 20, 2)]
        colours = {f: cmap(order[i % 20]) for i, f in enumerate(families)}
    fig = Figure(figsize=(16.5, 5.6))
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]

    def err(r: Mapping[str, Any], key: str, ci: Sequence[float] | None) -> Any:
        if not ci or r.get(key) is None:
            return None
        v = r[key]
        return [[100 * max(v - ci[0], 0.0)], [100 * max(ci[1] - v, 0.0)]]

    def draw(ax: Any, xkey: str, ykey: str, yci: str | None, xci: str | None) -> None:
        for r in rows:
            x, y = r.get(xkey), r.get(ykey)
            if x is None or y is None:
                continue
            style = dict(fmt="*", ms=14, color="red", zorder=5) if r["added"] else \
                dict(fmt="o", ms=5, color=colours[r["family"]])
            ycis = r.get("discrepancy_ci95") if yci == "discrepancy" else (r.get("ci95") or {}).get(yci or "")
            xcis = (r.get("ci95") or {}).get("accuracy") if xci == "accuracy" else None
            ax.errorbar(100 * x, 100 * y, yerr=err(r, ykey, ycis), xerr=err(r, xkey, xcis), capsize=2, lw=0.8,
                        alpha=0.9, **style)
            ax.annotate(r["name"], (100 * x, 100 * y), fontsize=5.5, xytext=(3, 2), textcoords="offset points",
                        color="red" if r["added"] else "#333")
        ax.grid(alpha=0.3)

    ax = axes[0]
    floor = sorted((r["accuracy"], r["macro_std_null"]) for r in rows if r.get("macro_std_null") is not None)
    if floor:
        fx, fy = np.array(floor).T
        ax.fill_between(100 * fx, 0, 100 * fy, color="#bbbbbb", alpha=0.45, lw=0,
                        label="noise floor (MacroStd with no subgroup effect)")
    draw(ax, "accuracy", "macro_std", "macro_std", "accuracy")
    ax.set_xlabel("CIFAR10-B accuracy (%)")
    ax.set_ylabel("MacroStd (%)")
    ax.set_title("accuracy vs MacroStd (95% CI bars)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[1]
    draw(ax, "cifar10_1_v6_accuracy", "discrepancy", "discrepancy", None)
    ax.set_xlabel("CIFAR-10.1 v6 accuracy (%)")
    ax.set_ylabel(f"{disc_label(table)} (%)")
    ax.set_title(f"{disc_label(table)} vs CIFAR-10.1 accuracy", fontsize=10)

    ax = axes[2]
    draw(ax, "drop_v6", "macro_std_adjusted", None, None)
    ax.axhline(0, color="#888", lw=0.8, ls="--")
    ax.set_xlabel("CIFAR-10 -> CIFAR-10.1 v6 drop (pp)")
    ax.set_ylabel("accuracy-adjusted discrepancy (pp)")
    ax.set_title("fairer than its accuracy predicts (< 0) vs the drop", fontsize=10)
    handles = [ax.plot([], [], "o", color=colours[f], label=f)[0] for f in families]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(families), 8), fontsize=7, frameon=False)
    fig.suptitle(f"{len(rows)} models on {table['n_images']:,} CIFAR10-B test images", fontsize=11)
    fig.subplots_adjust(bottom=0.2, wspace=0.3)
    return _png(fig)


def html_page(table: Mapping[str, Any], sort: str = "accuracy", reverse: bool = False) -> str:
    from cifarb.report.html import Figure, Section, render_html, table_html

    subgroups = list(table["settings"]["subgroup_names"])
    rows = sorted_rows(table, sort, reverse)
    header = [*MD_HEADER, *subgroups]
    body = [[c.strip("`") for c in _md_cells(r, subgroups)] for r in rows]
    sections = [
        Section("Summary", paragraphs=header_lines(table)),
        Section("Figure", figures=[Figure(scatter_png(table), caption=(
            "Left: accuracy against MacroStd with 95 % interval bars; the grey band is the noise floor, the MacroStd "
            "each model would show with no subgroup effect at its cell sizes. Middle: the discrepancy estimate "
            "against CIFAR-10.1 v6 accuracy. Right: the accuracy-adjusted discrepancy against the CIFAR-10 -> "
            "CIFAR-10.1 drop. Red stars are added models (only in the panels whose values they have: an added "
            "model without CIFAR-10.1 predictions appears on the left only)."))]),
        Section("Table", html=table_html(header, body)),
    ]
    rank = rank_lines(table)
    comps = [line for comp in table.get("comparisons", []) for line in [*comparison_lines(comp), ""]]
    if rank or comps:
        sections.append(Section("Added models", preformatted="\n".join(rank + [""] + comps).strip()))
    sections.append(Section("Analysis", preformatted="\n".join(analysis_lines(table)), paragraphs=[
        "Correlations are over models; their intervals resample the models with replacement. A partial "
        "correlation given CIFAR-10 accuracy asks whether the discrepancy measure says anything about CIFAR-10.1 "
        "accuracy beyond what CIFAR-10 accuracy already says."]))
    sections.append(Section("Provenance", paragraphs=[
        f"Reference predictions: {table['provenance']['reference']}; Recht, Roelofs, Schmidt and Shankar, "
        "Do CIFAR-10 Classifiers Generalize to CIFAR-10? (2018). Subgroups: CIFAR10-B background colours "
        "(Chiu, Chen and Ma, ICCV 2023). Cite with `cifarb cite reference`.",
        f"Scored test indices sha256 {table['provenance']['indices_sha256']}.",
    ]))
    return render_html("cifarb reference: published CIFAR-10 classifiers on CIFAR10-B", sections,
                       subtitle="Generated by `cifarb reference`; this page is self-contained.")
