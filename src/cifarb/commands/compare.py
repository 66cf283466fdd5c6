"""`cifarb compare RUNDIR_A RUNDIR_B`: paired bootstrap on the same images; is A really fairer than B?"""

from __future__ import annotations

import argparse

from cifarb.commands._common import non_negative_int, positive_int

DESCRIPTION = """\
Compare two runs on the same test images: one stratified bootstrap resample of the images evaluates
both runs' predictions (predictions/<dataset>.parquet), giving the 95% CI of the difference A - B in
accuracy, MacroStd, macro_std_excess and worst-cell accuracy. Two separate CIs cannot answer "is A
fairer than B"; this can. The verdict says "A is fairer than B" only when the CI of the MacroStd
difference excludes 0.

Both runs must cover exactly the same test images with the same labels. For -C predictions choose
one pair with --corruption and --severity (MacroStd is defined per pair).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="paired bootstrap of two runs on the same images (CI of the MacroStd difference)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: cifarb compare runs/study-cpu/cifar10-fastnet-standard_mixup-s0 "
        "runs/study-cpu/cifar10-fastnet-standard-s0",
    )
    p.add_argument("run_a", metavar="RUNDIR_A")
    p.add_argument("run_b", metavar="RUNDIR_B")
    p.add_argument("--dataset", metavar="NAME",
                   help="evaluation to compare on (default: the CIFAR-B set the runs were trained for), e.g. "
                   "cifar10-b, cifar10-c, cifar10.1")
    p.add_argument("--corruption", metavar="NAME", help="-C only: the corruption to compare on")
    p.add_argument("--severity", type=positive_int, metavar="S", help="-C only: the severity to compare on")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000, metavar="B",
                   help="paired bootstrap resamples (default 1000; 0: differences without CIs)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--min-cell-size", type=positive_int, metavar="M",
                   help="drop smaller cells from MacroStd (default: what A's evaluation used)")
    p.add_argument("--min-cell-size-worst", type=positive_int, metavar="K",
                   help="cell size needed for worst-cell accuracy (default: what A's evaluation used)")
    p.add_argument("--json", metavar="FILE", help="also write the comparison as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarb._atomic import atomic_write_json
    from cifarb.report.compare import compare_runs, format_comparison

    result = compare_runs(
        args.run_a, args.run_b, args.dataset, corruption=args.corruption, severity=args.severity,
        bootstrap=args.bootstrap, seed=args.seed, min_cell_size=args.min_cell_size,
        min_cell_size_worst=args.min_cell_size_worst,
    )
    print(format_comparison(result), end="")
    if args.json:
        atomic_write_json(args.json, result.to_dict())
    return 0
