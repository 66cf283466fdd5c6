"""Assemble a report from run directories: tables, correlations and figures, as text or one HTML page."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarb.errors import CifarbError
from cifarb.metrics.catalog import VERDICT_ORDER
from cifarb.report.analysis import Correlation, correlations, label
from cifarb.report.load import LoadedRuns, Run, load_runs
from cifarb.report.tables import (
    Group,
    Table,
    fmt_ci,
    method_labels,
    runs_table,
    summarize,
    summary_table,
    to_csv,
    to_latex,
    to_markdown,
)

FORMATS = ("md", "csv", "latex")


@dataclass
class BaselineComparison:
    """One method against the study's baseline method (same training dataset and architecture)."""

    method: str
    baseline: str
    comparison: Any | None  # report.compare.Comparison, None when it could not be computed
    note: str = ""


@dataclass
class Report:
    loaded: LoadedRuns
    groups: list[Group]
    labels: dict[tuple[str, str, str], str]
    correlations: list[Correlation]
    baseline: str | None = None
    baseline_source: str = ""
    vs_baseline: list[BaselineComparison] = field(default_factory=list)

    @property
    def runs(self) -> list[Run]:
        return [r for g in self.groups for r in g.runs]


def study_baseline(paths: Iterable[Path | str]) -> tuple[str | None, str]:
    """The baseline aug a study folder records in _study.json (written by `cifarb study`), and where from."""
    for p in map(Path, paths):
        info = p / "_study.json"
        if info.is_file():
            try:
                data = json.loads(info.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(data, dict) and isinstance(data.get("baseline"), str) and data["baseline"]:
                return data["baseline"], str(info)
    return None, ""


def compare_with_baseline(groups: Sequence[Group], baseline: str, bootstrap: int, seed: int
                          ) -> list[BaselineComparison]:
    """Every method against the baseline aug of its (dataset, arch), paired by seed, on clean CIFAR-B."""
    from cifarb.report.compare import compare

    base = {(g.dataset, g.arch): g for g in groups if g.aug == baseline}
    out = []
    for g in groups:
        ref = base.get((g.dataset, g.arch))
        if ref is None or ref is g:
            continue
        seeds = sorted({r.seed for r in g.runs} & {r.seed for r in ref.runs} - {None})
        note = ""
        unpaired = sorted({r.seed for r in g.runs} ^ {r.seed for r in ref.runs} - {None})
        if unpaired:
            note = f"seeds without a partner left out: {unpaired}"
        if not seeds:
            out.append(BaselineComparison(g.label, ref.label, None, "no seed in common with the baseline"))
            continue
        a = [next(r.path for r in g.runs if r.seed == s) for s in seeds]
        b = [next(r.path for r in ref.runs if r.seed == s) for s in seeds]
        try:
            c = compare(a, b, bootstrap=bootstrap, seed=seed, permutations=0)  # the runs' own p is in their tables
        except CifarbError as exc:
            out.append(BaselineComparison(g.label, ref.label, None, str(exc)))
            continue
        out.append(BaselineComparison(g.label, ref.label, c, note))
    return out


def build_report(paths: Iterable[Path | str], bootstrap: int = 2000, seed: int = 0, schema: bool = True,
                 baseline: str | None = None, compare_bootstrap: int = 1000) -> Report:
    """Load the run directories and compute everything a report shows; CifarbError if none is usable.

    `baseline` is the aug every other method is compared with (default: what a study folder's
    _study.json says, else the first method's aug); `compare_bootstrap` 0 skips those comparisons.
    """
    paths = list(paths)
    loaded = load_runs(paths, schema=schema)
    if not loaded.runs:
        detail = "; ".join(str(p) for p in loaded.problems) or "no run directories given"
        raise CifarbError(f"no usable run directory to report on ({detail})")
    groups = summarize(loaded.runs)
    labels = method_labels([g.runs[0].group for g in groups])
    corr = correlations([r for g in groups for r in g.runs], bootstrap=bootstrap, seed=seed)
    source = "--baseline"
    if baseline is None:
        baseline, source = study_baseline(paths)
    if baseline is None:
        baseline, source = groups[0].aug, "the first method"
    elif not any(g.aug == baseline for g in groups):
        raise CifarbError(f"baseline {baseline!r} ({source}) is none of the methods reported: "
                          f"{sorted({g.aug for g in groups})}; give --baseline AUG")
    vs = compare_with_baseline(groups, baseline, compare_bootstrap, seed) if compare_bootstrap > 0 else []
    return Report(loaded, groups, labels, corr, baseline, source, vs)


# --- text --------------------------------------------------------------------------------------------
def correlation_table(corrs: Sequence[Correlation]) -> Table:
    header = ["x (clean)", "y (shifted)", "runs", "Spearman ρ", "95% CI (runs resampled)", "p",
              "|ρ| for p<0.05", "note"]
    rows = []
    for c in corrs:
        rows.append([
            label(c.x), label(c.y), str(c.n),
            "—" if c.rho is None else f"{c.rho:+.2f}",
            "—" if c.ci95 is None else f"[{c.ci95[0]:+.2f}, {c.ci95[1]:+.2f}]",
            "—" if c.p_value is None else f"{c.p_value:.2g}",
            "—" if c.rho_critical is None else f"{c.rho_critical:.2f}",
            c.note,
        ])
    notes = [
        "Each point is one run (seeds count separately). The CI resamples runs with replacement, so it "
        "reflects how much the ranking depends on which runs happen to be in the study.",
        "A negative ρ between clean MacroStd and shifted accuracy means runs with more consistent "
        "subgroups rank higher under the shift. With few runs, only |ρ| near 1 is distinguishable from 0.",
    ]
    return Table("Rank correlation across runs", header, rows, notes)


def _swap(head: str, method: str, baseline: str) -> str:
    """A verdict's head with A and B named (A is the method, B the baseline)."""
    words = [method if w == "A" else baseline if w == "B" else w for w in head.split(" ")]
    return " ".join(words)


def _diff_ci(m: dict[str, Any] | None) -> str:
    if not m or m.get("diff") is None:
        return "—"
    text = f"{100 * m['diff']:+.2f}"
    if m.get("ci95") is not None:
        text += f" [{100 * m['ci95'][0]:+.2f}, {100 * m['ci95'][1]:+.2f}]"
    return text


def baseline_table(report: Report) -> Table | None:
    """Each method minus the baseline, paired by seed (two-level bootstrap over images and seeds)."""
    if not report.vs_baseline:
        return None
    primary = next((bc.comparison.primary for bc in report.vs_baseline if bc.comparison and bc.comparison.primary),
                   VERDICT_ORDER[-1])
    header = ["method", "vs", "seed pairs", "Δ acc pp [95% CI]", f"Δ {primary} pp [95% CI]",
              "Δ MacroStd pp [95% CI]", "verdict", "warnings"]
    rows = []
    for bc in report.vs_baseline:
        c = bc.comparison
        if c is None:
            rows.append([bc.method, bc.baseline, "—", "—", "—", "—", "not compared", bc.note])
            continue
        warn = "; ".join(w.split(":")[0] for w in c.warnings)
        rows.append([bc.method, bc.baseline, str(len(c.seeds)), _diff_ci(c.metrics.get("accuracy")),
                     _diff_ci(c.metrics.get(primary)), _diff_ci(c.metrics.get("macro_std")),
                     _swap(c.verdict.split(":")[0], bc.method, bc.baseline),
                     "; ".join(x for x in (warn.replace("A ", f"{bc.method} ").replace("B ", f"{bc.baseline} "),
                                           bc.note) if x) or "—"])
    notes = [
        f"Baseline: {report.baseline} ({report.baseline_source}). Δ = method − baseline on clean CIFAR-B, runs "
        "paired by seed; the CI resamples the test images and the seed pairs (two-level bootstrap; with one "
        "seed pair, images only).",
        f"The verdict is judged on {primary} (the noise floor removed), never on raw MacroStd; a method near "
        "chance is never called fairer.",
    ]
    return Table(f"Each method vs the baseline ({report.baseline})", header, rows, notes)


def _data_lines(report: Report) -> list[str]:
    lines = []
    for kind, what in (("b", "CIFAR-B"), ("c", "-C"), ("10.1", "CIFAR-10.1")):
        rs = [r for r in report.runs if kind in r.results]
        if not rs:
            continue
        names = sorted({r.eval_names[kind] for r in rs})
        sizes = sorted({(r.results[kind]["n_images"], r.results[kind]["n_official"]) for r in rs})
        verified = {bool(r.results[kind]["data_verified"]) for r in rs}
        size_text = ", ".join(f"{a}/{b}" for a, b in sizes)
        ver = "verified" if verified == {True} else ("NOT verified (local files)" if verified == {False} else "mixed")
        lines.append(f"{what}: {', '.join(names)} in {len(rs)} run(s); images used/official {size_text}; data {ver}.")
    return lines


def _problem_lines(report: Report) -> list[str]:
    return [f"LEFT OUT {p}" for p in report.loaded.problems]


def render_text(report: Report, fmt: str = "md") -> str:
    """The report's tables in `fmt` (md, csv or latex). Left-out runs are listed in md and latex."""
    if fmt == "csv":
        return to_csv(report.groups)
    tables = [summary_table(report.groups)]
    base = baseline_table(report)
    if base is not None:
        tables.append(base)
    tables.append(runs_table(report.runs, report.labels))
    if report.correlations:
        tables.append(correlation_table(report.correlations))
    if fmt == "latex":
        head = [f"% cifarb report: {_n(len(report.runs), 'run')}"] + [f"% {s}" for s in _problem_lines(report)]
        return "\n".join(head) + "\n\n" + "\n".join(to_latex(t) for t in tables)
    if fmt != "md":
        raise CifarbError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = [f"# cifarb report: {_n(len(report.runs), 'run')} in {_n(len(report.groups), 'method')}", ""]
    out += [f"- {line}" for line in _data_lines(report)]
    if report.loaded.problems:
        left = _n(len(report.loaded.problems), "run directory", "run directories")
        out += ["", f"**{left} left out** (never averaged in):", ""]
        out += [f"- {p.path}: {p.reason}" for p in report.loaded.problems]
    out.append("")
    out += [to_markdown(t) for t in tables]
    return "\n".join(out)


# --- figures -----------------------------------------------------------------------------------------
def _mean(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def scatter_points(groups: Sequence[Group]) -> list[dict[str, Any]]:
    pts = []
    for g in groups:
        s = g.stats
        pts.append({
            "label": g.label, "n_seeds": len(g.runs),
            "accuracy": s["accuracy"].mean, "accuracy_sd": s["accuracy"].sd,
            "macro_std": s["macro_std"].mean, "macro_std_sd": s["macro_std"].sd,
            "macro_std_excess": s["macro_std_excess"].mean, "macro_std_excess_sd": s["macro_std_excess"].sd,
            "macro_std_null": s["macro_std_null"].mean,
            "runs": [(r.results["b"]["accuracy"], r.results["b"]["macro_std"], r.results["b"]["macro_std_excess"])
                     for r in g.runs],
        })
    return pts


def severity_series(group: Group) -> dict[str, Any] | None:
    """Seed-averaged curves over severity (0 = clean CIFAR-B) for a method's -C results, or None."""
    runs = [r for r in group.runs if "c" in r.results]
    if not runs:
        return None
    by_sev = {r.path: (r.results["c"].get("corruptions_mean") or {}).get("by_severity") or {} for r in runs}
    severities = sorted({int(s) for b in by_sev.values() for s in b})
    if not severities:
        return None
    xs = [0, *severities]
    subgroups = list(dict.fromkeys(
        g for r in runs for g in (r.results["b"].get("subgroup_accuracy") or {})
    ))

    def block(r: Run, sev: int) -> dict[str, Any]:
        return r.results["b"] if sev == 0 else by_sev[r.path].get(str(sev)) or {}

    def curve(getter: Any) -> list[float | None]:
        return [_mean(getter(block(r, s)) for r in runs) for s in xs]

    return {
        "label": f"{group.label} ({len(runs)} run{'s' if len(runs) > 1 else ''}, {runs[0].eval_names['c']})",
        "severities": xs,
        "subgroup_accuracy": {g: curve(lambda b, g=g: (b.get("subgroup_accuracy") or {}).get(g)) for g in subgroups},
        "accuracy": curve(lambda b: b.get("accuracy")),
        "macro_std": curve(lambda b: b.get("macro_std")),
        "macro_std_excess": curve(lambda b: b.get("macro_std_excess")),
        "macro_std_debiased": curve(lambda b: b.get("macro_std_debiased")),
    }


# --- HTML --------------------------------------------------------------------------------------------
def provenance_table(report: Report) -> Table:
    """How every run was produced: commit, versions, data verification and input sha256s."""
    header = ["run", "git commit", "cifarb", "torch", "data verified", "model sha256", "data files (sha256)"]
    rows = []
    for r in report.runs:
        m = r.manifest or {}
        versions = m.get("versions") if isinstance(m.get("versions"), dict) else {}
        b = r.results["b"]
        prov = b.get("provenance") or {}
        data = prov.get("data_sha256") or {}
        files = ", ".join(f"{Path(str(f)).name} {str(h)[:12]}" for f, h in sorted(data.items())) or "—"
        verified = ", ".join(f"{r.eval_names[k]}: {'yes' if r.results[k].get('data_verified') else 'NO'}"
                             for k in ("b", "c", "10.1") if k in r.results)
        commit = m.get("git_commit")
        inputs = m.get("input_sha256") if isinstance(m.get("input_sha256"), dict) else {}
        if inputs and files == "—":
            files = ", ".join(f"{Path(str(f)).name} {str(h)[:12]}" for f, h in sorted(inputs.items()))
        rows.append([r.name, str(commit)[:12] if commit else "—",
                     str(versions.get("cifarb") or m.get("cifarb_version") or b.get("cifarb_version") or "—"),
                     str(versions.get("torch") or "—"), verified,
                     str(prov.get("model_sha256"))[:12] if prov.get("model_sha256") else "—", files])
    commits = sorted({row[1] for row in rows if row[1] != "—"})
    notes = [f"{_n(len(commits), 'commit')} across the runs: {', '.join(commits) or 'none recorded'}.",
             "sha256s are shortened to 12 hex digits; the full values are in each run's manifest.json and "
             "eval/*.json (provenance). 'data verified' is the result's data_verified: every input file "
             "matched its published checksum."]
    return Table("Provenance", header, rows, notes)


def _mean_results(groups: Sequence[Group]) -> dict[str, dict[str, Any]]:
    from cifarb.report.figures import mean_result

    return {g.label: mean_result([r.results["b"] for r in g.runs]) for g in groups}


def render_report_html(report: Report, title: str = "cifarb report", progress: bool = False,
                       per_run_heatmaps: bool = False) -> str:
    """One self-contained page: tables, per-method and difference heatmaps, severity curves, provenance.

    Figures drawn inside `cifarb.report.figures.export_figures(DIR)` are also written as PDF/SVG.
    """
    from cifarb.report.figures import (
        accuracy_vs_macrostd_png,
        deviation_heatmap_png,
        difference_heatmap_png,
        heatmap_png,
        severity_overlay_png,
        severity_png,
    )
    from cifarb.report.html import Figure, Section, render_html, table_html

    def tbl(t: Table, title: str | None = None) -> Section:
        return Section(title or t.title, html=table_html(t.header, t.rows), paragraphs=list(t.notes))

    overview = Section(
        "Run directories",
        paragraphs=[f"{_n(len(report.runs), 'run directory', 'run directories')} used, in "
                    f"{_n(len(report.groups), 'method')} "
                    f"(grouped by training dataset, architecture and augmentation; seeds averaged)."]
        + _data_lines(report) + report.loaded.notes,
        warnings=[f"Left out (never averaged in): {p.path}: {p.reason}" for p in report.loaded.problems],
    )
    sections = [overview, tbl(summary_table(report.groups))]
    base = baseline_table(report)
    if base is not None:
        sections.append(tbl(base))
    sections.append(Section(
        "Accuracy vs MacroStd",
        paragraphs=["Does better accuracy come with more consistent subgroups? Lower is more consistent. "
                    "The right panel subtracts the noise floor (MacroStd expected from sampling noise alone)."],
        figures=[Figure(accuracy_vs_macrostd_png(scatter_points(report.groups), name="accuracy_vs_macrostd"),
                        "accuracy vs MacroStd")],
    ))
    if report.correlations:
        sections.append(tbl(correlation_table(report.correlations)))
    series = [s for s in (severity_series(g) for g in report.groups) if s]
    if series:
        # the verdict's discrepancy measure: the first one the series has values for
        disc = next((k for k in VERDICT_ORDER if any(v is not None for s in series for v in s[k])), VERDICT_ORDER[-1])
        sections.append(Section(
            "Discrepancy and accuracy by corruption severity",
            paragraphs=[f"Every method on one plot: {disc} (left) and accuracy (right) against corruption "
                        "severity (mean over corruptions; 0 is the clean CIFAR-B set), averaged over seeds. "
                        "A discrepancy that falls while accuracy collapses is a model failing every subgroup "
                        "alike, not a fairer one."],
            figures=[Figure(severity_overlay_png(series, disc, name="severity_overlay"),
                            f"{disc} and accuracy by severity, methods overlaid")],
        ))
        sections.append(Section(
            "Subgroup accuracy by corruption severity",
            paragraphs=["Per method: accuracy per subgroup, and MacroStd with its excess over the noise floor, "
                        "against corruption severity, averaged over seeds."],
            figures=[Figure(severity_png(**s, name=f"severity_{_slug(s['label'])}"), f"{s['label']}: by severity")
                     for s in series],
        ))
    means = _mean_results(report.groups)
    heat, dev, diff = [], [], []
    ref = next((g for g in report.groups if g.aug == report.baseline), None)
    for g in _progress(report.groups, progress, "heatmaps"):
        mres = means[g.label]
        k = len(g.runs)
        heat.append(Figure(heatmap_png(mres, title=f"{g.label}: mean over {_n(k, 'seed')} ({mres['dataset']})",
                                       name=f"heatmap_{_slug(g.label)}"),
                           f"{g.label}: cell accuracy averaged over {_n(k, 'seed')}"))
        dev.append(Figure(deviation_heatmap_png(mres, title=f"{g.label}: a_cg − m_c, mean over {_n(k, 'seed')}",
                                                name=f"deviation_{_slug(g.label)}"),
                          f"{g.label}: how far each cell is from its class's accuracy"))
        if ref is not None and g is not ref and (g.dataset, g.arch) == (ref.dataset, ref.arch):
            diff.append(Figure(difference_heatmap_png(mres, means[ref.label], title=f"{g.label} − {ref.label}",
                                                      name=f"difference_{_slug(g.label)}_vs_{_slug(ref.label)}"),
                               f"{g.label} minus the baseline {ref.label}, cell by cell (means over seeds)"))
    sections.append(Section("Class × subgroup accuracy per method", figures=heat,
                            paragraphs=["Each cell: accuracy % averaged over the method's seeds and the number of "
                                        "test images n. Grey: empty cell."]))
    sections.append(Section("Cell accuracy minus class accuracy (a_cg − m_c)", figures=dev,
                            paragraphs=["The deviations MacroStd summarises, on a diverging scale centred on 0 "
                                        "(red: the subgroup does worse than its class). Hatched cells have fewer "
                                        "images than min_cell_size_worst: read them as noise."]))
    if diff:
        sections.append(Section(f"Difference from the baseline ({report.baseline})", figures=diff,
                                paragraphs=["Cell accuracy of each method minus the baseline's (means over seeds); "
                                            "blue: the method does better in that cell. Hatched: small cells."]))
    sections.append(tbl(runs_table(report.runs, report.labels), "Runs (one row per run directory)"))
    if per_run_heatmaps:
        per_run = []
        for r in _progress(report.runs, progress, "run heatmaps"):
            b = r.results["b"]
            ci = (b.get("ci95") or {}).get("macro_std")
            cap = f"{r.name}: {b['dataset']}, accuracy {100 * b['accuracy']:.1f}%, MacroStd {100 * b['macro_std']:.2f}% " \
                  f"95% CI {fmt_ci(*(ci or (None, None)), 2)}, excess {_pp(b.get('macro_std_excess'))}"
            per_run.append(Figure(heatmap_png(b, title=f"{r.name} ({b['dataset']})", name=f"run_{_slug(r.name)}"), cap))
        sections.append(Section("Class × subgroup accuracy per run", figures=per_run,
                                paragraphs=["Each cell: accuracy % and the number of test images n. Grey: empty cell."]))
    sections.append(tbl(provenance_table(report)))
    titles = [s.title for s in sections]
    assert len(titles) == len(set(titles)), f"duplicate section titles {titles}"  # anchors and the contents list
    return render_html(title, sections, subtitle=f"generated by cifarb from {len(report.runs)} run directories")


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_")


def _n(k: int, one: str, many: str | None = None) -> str:
    return f"{k} {one if k == 1 else many or one + 's'}"


def _pp(v: float | None) -> str:
    return "—" if v is None or math.isnan(v) else f"{100 * v:+.2f} pp"


def _progress(items: Sequence[Any], progress: bool, desc: str) -> Iterable[Any]:
    from cifarb._progress import progress_bar

    return progress_bar(len(items), desc, progress=progress, iterable=items)
