"""`cifarb report RUNDIR...`: tables (md, csv, LaTeX), rank correlations and a self-contained HTML report."""

from __future__ import annotations

import argparse
import contextlib
import sys

from cifarb.commands._common import non_negative_int
from cifarb.errors import UsageError

DESCRIPTION = """\
Summarise run directories (or study folders, which expand to their cells): accuracy, MacroStd with
its bootstrap CI and macro_std_excess (MacroStd minus its noise floor), worst-cell accuracy, mean -C
accuracy and MacroStd, and CIFAR-10.1 accuracy, averaged over seeds with their spread; Spearman rank
correlations across runs between clean MacroStd / accuracy and -C / CIFAR-10.1 accuracy, with a
bootstrap CI over runs. Built from the run directories only (eval/*.json, manifest.json).

Corrupt or partial run directories (unfinished training, truncated or invalid results) are listed as
left out and never averaged in. --html writes one self-contained page (figures inline) that opens
offline: the summary and method-vs-baseline tables, accuracy vs MacroStd, discrepancy and accuracy by
corruption severity with every method overlaid, a class x subgroup heatmap per method (mean over
seeds), a_cg - m_c on a diverging scale with small cells hatched, each method's difference from the
baseline, and a provenance table (commits, versions, data verification, sha256s). --figures DIR
writes those figures as PDF and SVG for papers.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="tables, rank correlations and an HTML report from run directories",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: cifarb report runs/study-cpu --html report.html --format md --out report.md",
    )
    p.add_argument("rundirs", nargs="+", metavar="RUNDIR", help="run directories or study folders")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report to FILE")
    p.add_argument("--format", choices=("md", "csv", "latex"), default="md", help="table format (default md)")
    p.add_argument("--out", metavar="FILE", help="write the tables to FILE instead of stdout")
    p.add_argument("--title", default="cifarb report", help="title of the HTML page")
    p.add_argument(
        "--bootstrap", type=non_negative_int, default=2000, metavar="B",
        help="resamples of runs for the rank-correlation CIs (default 2000; 0: no CIs)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the rank-correlation bootstrap (default 0)")
    p.add_argument("--baseline", metavar="AUG",
                   help="the method every other is compared with, paired by seed (default: the study's "
                   "[study] baseline from <study>/_study.json, else the first method)")
    p.add_argument("--compare-bootstrap", type=non_negative_int, default=1000, metavar="B",
                   help="resamples of the method-vs-baseline comparisons (default 1000; 0: no comparisons)")
    p.add_argument("--figures", metavar="DIR",
                   help="also write every figure of the HTML report to DIR as PDF and SVG (for papers); "
                   "implies drawing them even without --html")
    p.add_argument("--figure-formats", default="pdf,svg", metavar="LIST",
                   help="formats for --figures, comma-separated among pdf, svg, png, eps (default pdf,svg)")
    p.add_argument("--per-run-heatmaps", action="store_true",
                   help="HTML: also one class x subgroup heatmap per run (default: per method and vs the baseline)")
    p.add_argument("--strict", action="store_true", help="exit 1 if any run directory had to be left out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarb._atomic import atomic_write_text
    from cifarb.report.build import build_report, render_report_html, render_text

    report = build_report(args.rundirs, bootstrap=args.bootstrap, seed=args.seed, baseline=args.baseline,
                          compare_bootstrap=args.compare_bootstrap)
    for p in report.loaded.problems:  # loudly, on stderr, whatever the format
        print(f"cifarb: warning: left out {p.path}: {p.reason}", file=sys.stderr)
    text = render_text(report, args.format)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out} ({len(report.runs)} runs)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    formats = tuple(f.strip().lower() for f in args.figure_formats.split(",") if f.strip())
    bad = [f for f in formats if f not in ("pdf", "svg", "png", "eps")]
    if bad or not formats:
        raise UsageError(f"--figure-formats {args.figure_formats!r}: choose among pdf, svg, png, eps")
    if args.html or args.figures:
        from cifarb.report.figures import export_figures

        with contextlib.ExitStack() as stack:
            written = stack.enter_context(export_figures(args.figures, formats)) if args.figures else []
            page = render_report_html(report, title=args.title, progress=not args.no_progress,
                                      per_run_heatmaps=args.per_run_heatmaps)
        if args.html:
            atomic_write_text(args.html, page)
            print(f"wrote {args.html}", file=sys.stderr)
        if args.figures:
            print(f"wrote {len(written)} figure files to {args.figures}", file=sys.stderr)
    if args.strict and report.loaded.problems:
        print(f"cifarb: error: {len(report.loaded.problems)} run directories left out (--strict)", file=sys.stderr)
        return 1
    return 0
