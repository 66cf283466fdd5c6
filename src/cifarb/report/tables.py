"""Report tables: per-run values and seed-averaged summaries, rendered as markdown, CSV or LaTeX."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cifarb.data.names import parse_eval_name
from cifarb.metrics import catalog
from cifarb.report.load import Run


@dataclass(frozen=True)
class Metric:
    """One report column: a catalogue metric (decimals, scale, whether it has a CI) read from one result."""

    key: str  # column id
    kind: str  # "b" | "c" | "10.1": which result JSON it comes from
    field: str  # the catalogue key inside that result
    label: str  # table header
    show_ci: bool = True  # show its 95 % CI where the catalogue gives it one (read from the CIFAR-B result)

    @property
    def spec(self) -> catalog.Metric:
        return catalog.BY_KEY[self.field]

    @property
    def digits(self) -> int:
        return self.spec.digits

    @property
    def scale(self) -> int:
        return self.spec.scale

    @property
    def has_ci(self) -> bool:
        return self.show_ci and self.kind == "b" and self.spec.ci95


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "b", "accuracy", "Acc %"),
    Metric("macro_std", "b", "macro_std", "MacroStd %"),
    Metric("macro_std_null", "b", "macro_std_null", "null %"),
    Metric("macro_std_excess", "b", "macro_std_excess", "excess %"),
    Metric("macro_std_debiased", "b", "macro_std_debiased", "debiased %"),
    Metric("p_subgroup_effect", "b", "p_subgroup_effect", "p(effect)"),
    Metric("worst_cell_accuracy", "b", "worst_cell_accuracy", "worst cell %"),
    Metric("worst_subgroup_accuracy", "b", "worst_subgroup_accuracy", "worst subgroup %", show_ci=False),
    Metric("c_accuracy", "c", "accuracy", "-C acc %"),
    Metric("c_macro_std", "c", "macro_std", "-C MacroStd %"),
    Metric("c_macro_std_excess", "c", "macro_std_excess", "-C excess %"),
    Metric("c101_accuracy", "10.1", "accuracy", "10.1 acc %"),
)
BY_KEY = {m.key: m for m in METRICS}


def run_values(run: Run) -> dict[str, float | None]:
    """Every table metric of one run (fractions; None when the evaluation or value is absent)."""
    out: dict[str, float | None] = {}
    for m in METRICS:
        res = run.results.get(m.kind)
        v = res.get(m.field) if res else None
        out[m.key] = None if v is None else float(v)
    return out


def run_cis(run: Run) -> dict[str, tuple[float, float] | None]:
    """The bootstrap 95 % CIs the CIFAR-B result carries (None when it was computed with --bootstrap 0)."""
    ci = run.results["b"].get("ci95") or {}
    out: dict[str, tuple[float, float] | None] = {}
    for m in METRICS:
        if m.has_ci:
            pair = ci.get(m.field)
            out[m.key] = (float(pair[0]), float(pair[1])) if pair else None
    return out


@dataclass
class Stat:
    """One metric over the seeds of a group: mean, sample sd (None for one seed), count, mean CI bounds."""

    mean: float | None
    sd: float | None
    n: int
    ci_lo: float | None = None
    ci_hi: float | None = None


@dataclass
class Group:
    label: str
    dataset: str
    arch: str
    aug: str
    runs: list[Run]
    stats: dict[str, Stat] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]


def _stat(values: Sequence[float | None], cis: Sequence[tuple[float, float] | None] = ()) -> Stat:
    vals = [v for v in values if v is not None]
    if not vals:
        return Stat(None, None, 0)
    sd = statistics.stdev(vals) if len(vals) >= 2 else None
    good = [c for c in cis if c is not None]
    lo = statistics.fmean(c[0] for c in good) if good else None
    hi = statistics.fmean(c[1] for c in good) if good else None
    return Stat(statistics.fmean(vals), sd, len(vals), lo, hi)


def method_labels(keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """Short labels: only the parts of (dataset, arch, aug) that differ between groups (aug at least)."""
    varying = [i for i in range(3) if len({k[i] for k in keys}) > 1] or [2]
    return {k: "/".join(k[i] for i in varying) for k in keys}


def summarize(runs: Sequence[Run]) -> list[Group]:
    """Runs grouped by (training dataset, arch, aug), in first-seen order, with per-metric stats."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    labels = method_labels(list(groups))
    out = []
    for key, members in groups.items():
        members = sorted(members, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, r.name))
        g = Group(labels[key], *key, runs=members)
        values = [run_values(r) for r in members]
        cis = [run_cis(r) for r in members]
        for m in METRICS:
            g.stats[m.key] = _stat([v[m.key] for v in values], [c.get(m.key) for c in cis] if m.has_ci else ())
        out.append(g)
    return out


# --- formatting --------------------------------------------------------------------------------------
def pct(v: float | None, digits: int, scale: int = 100) -> str:
    """Percent text of a fraction (`scale` 1: the value as is); an em dash when missing (older results)."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{scale * v:.{digits}f}"


def fmt_stat(s: Stat, digits: int, n_runs: int, scale: int = 100) -> str:
    if s.mean is None:
        return "—"
    text = pct(s.mean, digits, scale)
    if s.sd is not None:
        text += f" ± {scale * s.sd:.{digits}f}"
    if s.n < n_runs:
        text += f" (n={s.n})"
    return text


def fmt_ci(lo: float | None, hi: float | None, digits: int) -> str:
    if lo is None or hi is None:
        return "—"
    return f"[{pct(lo, digits)}, {pct(hi, digits)}]"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _present(runs: Sequence[Run], kind: str) -> bool:
    return any(kind in r.results for r in runs)


def _columns(runs: Sequence[Run]) -> list[Metric]:
    """Columns with data: -C and CIFAR-10.1 only when some run has them."""
    return [m for m in METRICS if m.kind == "b" or _present(runs, m.kind)]


# metrics whose mean bootstrap CI the summary table shows, and its column header
_SUMMARY_CI = {"macro_std": "MacroStd 95% CI", "macro_std_debiased": "debiased 95% CI"}


def summary_table(groups: Sequence[Group]) -> Table:
    """One row per method: mean ± sd over seeds; MacroStd's CI is the mean of the runs' bootstrap CIs."""
    runs = [r for g in groups for r in g.runs]
    cols = _columns(runs)
    header = ["method", "seeds"]
    for m in cols:
        header.append(m.label)
        if m.key in _SUMMARY_CI:
            header.append(_SUMMARY_CI[m.key])
    rows = []
    for g in groups:
        row = [g.label, str(len(g.runs))]
        for m in cols:
            s = g.stats[m.key]
            row.append(fmt_stat(s, m.digits, len(g.runs), m.scale))
            if m.key in _SUMMARY_CI:
                row.append(fmt_ci(s.ci_lo, s.ci_hi, m.digits))
        rows.append(row)
    notes = [
        "Values are percent, mean ± sample sd over seeds (no ± with one seed; (n=k) when only k runs have "
        "that evaluation).",
        "MacroStd 95% CI: the stratified-bootstrap CIs of the runs, bounds averaged over seeds (image "
        "sampling noise); ± is the seed spread (training noise). It is re-centred by the resamples' bias, "
        "so it contains the estimate, and covers the plug-in's expectation at this composition, not the "
        "true discrepancy: for that read debiased and its CI.",
        "excess = MacroStd − null, where null is MacroStd's noise floor: its expected value with no "
        "subgroup effect at all, given the cell sizes and class accuracies.",
        "debiased: MacroStd with each class's binomial noise removed (an estimate of the true MacroStd); "
        "p(effect): the within-class permutation test of no subgroup effect. — where a result predates them.",
    ]
    if _present(runs, "c"):
        notes.append("-C: mean over all corruption × severity pairs present" + _local_note(runs))
    return Table("Summary over seeds", header, rows, notes)


def _local_note(runs: Sequence[Run]) -> str:
    names = {r.eval_names.get("c") for r in runs if "c" in r.results}
    if any(n and (parsed := parse_eval_name(n)) is not None and parsed.local for n in names):
        return " (generated locally with `cifarb data make-c`: not the official CIFAR-C files)."
    return "."


def runs_table(runs: Sequence[Run], labels: Mapping[tuple[str, str, str], str]) -> Table:
    """One row per run, with the bootstrap CIs of its CIFAR-B metrics."""
    cols = _columns(runs)
    header = ["run", "method", "seed", "n images"]
    for m in cols:
        header.append(m.label)
        if m.has_ci:
            header.append("95% CI")
    rows = []
    for r in runs:
        vals, cis = run_values(r), run_cis(r)
        b = r.results["b"]
        row = [r.name, labels.get(r.group, r.aug), "—" if r.seed is None else str(r.seed),
               f"{b['n_images']}/{b['n_official']}"]
        for m in cols:
            row.append(pct(vals[m.key], m.digits, m.scale))
            if m.has_ci:
                ci = cis.get(m.key)
                row.append(fmt_ci(*(ci or (None, None)), m.digits))
        rows.append(row)
    return Table("Runs", header, rows, ["95% CI: stratified bootstrap over the test images of each run."])


# --- renderers -------------------------------------------------------------------------------------
def to_markdown(table: Table, level: int = 2) -> str:
    lines = [f"{'#' * level} {table.title}", ""]
    lines.append("| " + " | ".join(h.replace("|", "\\|") for h in table.header) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.header))) + "|")
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("—", "--").replace("−", "$-$").replace("×", r"$\times$")


def to_latex(table: Table) -> str:
    spec = "l" + "r" * (len(table.header) - 1)
    lines = [f"% {table.title}", r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(latex_escape(h) for h in table.header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    caption = table.title + (". " + " ".join(table.notes) if table.notes else "")
    lines += [rf"\caption{{{latex_escape(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(groups: Sequence[Group]) -> str:
    """Machine-readable: one row per run (level=run) then one per method (level=mean), fractions not percent."""
    keys = [m.key for m in METRICS]
    header = ["level", "method", "dataset", "arch", "aug", "seed", "run", "n_runs"]
    for k in keys:
        header += [k, f"{k}_sd", f"{k}_n"]
        if BY_KEY[k].has_ci:
            header += [f"{k}_ci_lo", f"{k}_ci_hi"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)

    def num(v: Any) -> str:
        return "" if v is None else repr(float(v))

    for g in groups:
        for r in g.runs:
            vals, cis = run_values(r), run_cis(r)
            row: list[Any] = ["run", g.label, g.dataset, g.arch, g.aug, "" if r.seed is None else r.seed, str(r.path), 1]
            for k in keys:
                row += [num(vals[k]), "", int(vals[k] is not None)]
                if BY_KEY[k].has_ci:
                    ci = cis.get(k)
                    row += [num(ci[0]) if ci else "", num(ci[1]) if ci else ""]
            w.writerow(row)
    for g in groups:
        seeds = " ".join("" if s is None else str(s) for s in g.seeds)
        row = ["mean", g.label, g.dataset, g.arch, g.aug, seeds, "", len(g.runs)]
        for k in keys:
            s = g.stats[k]
            row += [num(s.mean), num(s.sd), s.n]
            if BY_KEY[k].has_ci:
                row += [num(s.ci_lo), num(s.ci_hi)]
        w.writerow(row)
    return buf.getvalue()
