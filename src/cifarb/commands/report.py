"""`cifarb report RUNDIR...`: tables (md, csv, LaTeX), rank correlations and a self-contained HTML report."""

from __future__ import annotations

import argparse
import sys

from cifarb.commands._common import non_negative_int

DESCRIPTION = """\
Summarise run directories (or study folders, which expand to their cells): accuracy, MacroStd with
its bootstrap CI and macro_std_excess (MacroStd minus its noise floor), worst-cell accuracy, mean -C
accuracy and MacroStd, and CIFAR-10.1 accuracy, averaged over seeds with their spread; Spearman rank
correlations across runs between clean MacroStd / accuracy and -C / CIFAR-10.1 accuracy, with a
bootstrap CI over runs. Built from the run directories only (eval/*.json, manifest.json).

Corrupt or partial run directories (unfinished training, truncated or invalid results) are listed as
left out and never averaged in. --html writes one self-contained page (figures inline) that opens
offline: accuracy vs MacroStd, a class x subgroup heatmap per run, and curves over corruption severity.
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
    if args.html:
        page = render_report_html(report, title=args.title, progress=not args.no_progress)
        atomic_write_text(args.html, page)
        print(f"wrote {args.html}", file=sys.stderr)
    if args.strict and report.loaded.problems:
        print(f"cifarb: error: {len(report.loaded.problems)} run directories left out (--strict)", file=sys.stderr)
        return 1
    return 0
