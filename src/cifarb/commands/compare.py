"""`cifarb compare A... -- B...`: paired bootstrap on the same images; is method A really fairer than B?"""

from __future__ import annotations

import argparse

from cifarb.commands._common import non_negative_int, positive_int
from cifarb.errors import UsageError

DESCRIPTION = """\
Compare A against B on the same test images. Each resample of the images scores both sides, giving
the 95% CI of the difference A - B in accuracy, MacroStd, its debiased form and its excess over the
noise floor, and worst-cell accuracy. Two separate CIs cannot answer "is A fairer than B"; this can.

The verdict is judged on the discrepancy with the noise floor removed (macro_std_debiased, the
MacroStd with each class's binomial noise taken out; its CI is the difference of the two models' D
intervals), never on raw MacroStd, which small cells inflate. It says "A is fairer than B" only
when that difference's CI lies below 0, states the accuracy difference beside it, and warns when accuracy and discrepancy
disagree or a model is near chance (accuracy below chance + a quarter of the rest: 32.5% for 10
classes), where a low discrepancy only means the model fails every subgroup alike; a near-chance
model is never called fairer.

Inputs: run directories (their predictions/<dataset>.parquet), or predictions files as `cifarb
metrics` reads them (.npy, .npz, .csv, .parquet; give --dataset cifar10-b|cifar100-b).
Several runs per side compare methods rather than runs: run directories are paired by the seed in
their manifests (predictions files by position), and a two-level bootstrap resamples the images
and the seed pairs. Options come before the run lists.

For -C predictions choose one pair with --corruption and --severity (MacroStd is defined per pair).
"""

EPILOG = """\
examples:
  cifarb compare runs/study/cifar10-fastnet-standard_mixup-s0 runs/study/cifar10-fastnet-standard-s0
  cifarb compare --bootstrap 2000 runs/study/*mixup-s{0,1,2} -- runs/study/*-standard-s{0,1,2}
  cifarb compare --a 'runs/study/*-standard_mixup-s*' --b 'runs/study/*-standard-s*'
  cifarb compare --dataset cifar10-b mine.csv theirs.csv
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="paired bootstrap of A vs B on the same images (runs, seeds or predictions files)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        usage="cifarb compare [options] A B | A1 A2 ... -- B1 B2 ... | --a GLOB --b GLOB",
    )
    p.add_argument("runs", nargs=argparse.REMAINDER, metavar="RUN",
                   help="A then B (one each), or A runs, --, B runs; run directories or predictions files")
    _add_options(p)
    p.set_defaults(func=run)


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--a", dest="glob_a", metavar="GLOB", help="A runs: a glob of run directories or files (quote it)")
    p.add_argument("--b", dest="glob_b", metavar="GLOB", help="B runs: a glob of run directories or files (quote it)")
    p.add_argument("--dataset", metavar="NAME",
                   help="evaluation to compare on (run directories: default the CIFAR-B set they were trained "
                   "for, e.g. cifar10-b, cifar10-c, cifar10.1; predictions files: required, cifar10-b or cifar100-b)")
    p.add_argument("--corruption", metavar="NAME", help="-C only: the corruption to compare on")
    p.add_argument("--severity", type=positive_int, metavar="S", help="-C only: the severity to compare on")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000, metavar="B",
                   help="paired bootstrap resamples (default 1000; 0: differences without CIs)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--permutations", type=non_negative_int, default=999, metavar="R",
                   help="within-class permutations behind each run's p_subgroup_effect, the p-value of 'no "
                   "subgroup effect', shown for A and B (default 999; 0 turns it off; needs --bootstrap > 0)")
    p.add_argument("--min-cell-size", type=positive_int, metavar="M",
                   help="drop smaller cells from MacroStd (default: what A's evaluation used, else 1)")
    p.add_argument("--min-cell-size-worst", type=positive_int, metavar="K",
                   help="cell size needed for worst-cell accuracy (default: what A's evaluation used, else 10)")
    p.add_argument("--json", metavar="FILE", help="also write the comparison as JSON")


def split_runs(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(A paths, B paths) from `A B`, `A... -- B...` or `--a GLOB --b GLOB`; UsageError otherwise."""
    from cifarb.report.compare import expand_globs

    runs = list(args.runs)
    if runs and runs[0] == "--":  # argparse keeps a leading "--" in a REMAINDER
        runs = runs[1:]
    options = [r for r in runs if r.startswith("--") and r != "--"]
    if options and "--" not in runs:
        # `A B --bootstrap 500`: the two-run form also takes options after the runs
        late = argparse.ArgumentParser(prog="cifarb compare", add_help=False)
        late.add_argument("runs", nargs="*")
        _add_options(late)
        runs = late.parse_args(runs, namespace=args).runs
    elif options:
        raise UsageError(f"options come before the run lists; move {options[0]} before the first run")
    if args.glob_a or args.glob_b:
        if not (args.glob_a and args.glob_b):
            raise UsageError("give both --a GLOB and --b GLOB")
        if runs:
            raise UsageError("give runs either as --a/--b globs or as positional lists, not both")
        return ([str(p) for p in expand_globs(args.glob_a, "--a")], [str(p) for p in expand_globs(args.glob_b, "--b")])
    if "--" in runs:
        cut = runs.index("--")
        a, b = runs[:cut], runs[cut + 1:]
        if "--" in b:
            raise UsageError("give one -- between the A runs and the B runs")
        if not a or not b:
            raise UsageError("give at least one run on each side of --")
        return a, b
    if len(runs) == 2:
        return [runs[0]], [runs[1]]
    raise UsageError(f"got {len(runs)} runs; give A B, or A1 A2 ... -- B1 B2 ..., or --a GLOB --b GLOB")


def run(args: argparse.Namespace) -> int:
    from cifarb._atomic import atomic_write_json
    from cifarb.report.compare import compare, format_comparison

    try:
        a, b = split_runs(args)
    except SystemExit as exc:  # argparse already printed the usage error
        return int(exc.code or 2)
    result = compare(
        a, b, args.dataset, corruption=args.corruption, severity=args.severity,
        bootstrap=args.bootstrap, seed=args.seed, min_cell_size=args.min_cell_size,
        min_cell_size_worst=args.min_cell_size_worst, permutations=args.permutations,
    )
    print(format_comparison(result), end="")
    if args.json:
        atomic_write_json(args.json, result.to_dict())
    return 0
