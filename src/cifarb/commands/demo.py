"""`cifarb demo`: offline evaluation of the bundled ResNet20 on the bundled real CIFAR-10 sample."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarb.commands._common import non_negative_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="offline demo: bundled ResNet20 on 1,017 bundled CIFAR-10 test images -> table + HTML report",
        description="Evaluate the bundled pretrained ResNet20 on the bundled sample (the first 1,017 real "
        "CIFAR-10 test images) with the CIFAR10-B background-colour subgroups. Prints accuracy per "
        "subgroup, the debiased MacroStd with its 95 % CI and p-value, MacroStd with its noise floor and "
        "excess, and the worst (class, subgroup) "
        "cell; writes DIR/report.html (self-contained, with a class x subgroup heatmap) and DIR/result.json. "
        "Needs no network and no downloaded data.",
    )
    parser.add_argument("--out", default="cifarb-demo", metavar="DIR",
                        help="folder for report.html and result.json (default ./cifarb-demo)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--permutations", type=non_negative_int, default=999, metavar="R",
                        help="within-class permutations behind p_subgroup_effect (default 999; 0 turns the test off)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarb.errors import UsageError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory; choose a directory path")
    from cifarb.demo import run_demo

    demo = run_demo(out, progress=not args.no_progress, permutations=args.permutations)
    print(demo.text)
    print(f"\nwrote {demo.report} (open it in a browser) and {demo.result_json}")
    return 0
