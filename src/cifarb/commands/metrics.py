"""`cifarb metrics PREDICTIONS --dataset NAME | --groups FILE`: subgroup metrics of a predictions file."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarb.commands._common import add_metric_args, add_root_args, comma_list
from cifarb.errors import UsageError

FORMATS_HELP = """\
Predictions files (--dataset):
  .npy             exactly 10,000 integer class ids in official test order
  .npz             the same array under the key "predictions"
  .csv or .parquet any subset of the test set, with a header naming the columns index,prediction
                   (extra columns are ignored): index = 0-based official test index,
                   prediction = class id or official class name (e.g. "airplane", "aquarium_fish")
Labels and background-colour subgroups come from the CIFAR-B labels bundled with cifarb, so no
images are read (and data_verified is true). cifar100-super scores the 20 CIFAR-100 superclasses
with their 5 fine classes as subgroups; --predictions says whether the ids are fine (0..99, the
default, mapped to their superclass) or coarse (0..19).
--dataset cifar10.1 (--cifar10-1-version v6|v4): .npy/.npz hold all 2,000 (v6) or 2,021 (v4) ids; the
labels are read from <root>/CIFAR-10.1/ (not bundled), verified by git blob id or --trust-local.

Bring your own groups (--groups FILE, .csv or .parquet; one row per sample):
  cifarb groups  index|id,label,group[,class_name,group_name]; label/group are ids or strings
                 (strings are sorted and become the names)
  SubpopBench    filename,y,a,split (split 0/1/2 = train/val/test; --split, default test)
  WILDS-style    y plus metadata fields (.csv/.parquet/.npz); --group-by a,b makes the subgroups,
                 numbered as WILDS' CombinatorialGrouper does (first field varies fastest)
  Predictions join on the same key column (index, id or filename; WILDS rows without one join on
  index = row number): .csv/.parquet with KEY,prediction for any subset of rows (an optional
  label column must agree), or .npy/.npz with one id per row. Any join problem is an error.
The JSON follows the result contract (cifarb/schemas/result.schema.json); provenance.model is the
predictions file and its sha256. See docs/datasets.md.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="subgroup metrics (MacroStd, worst cell, CIs) of a predictions file; no images needed",
        description="Compute accuracy, MacroStd with its noise floor, worst-cell and worst-subgroup accuracy "
        "and stratified bootstrap 95% CIs for predictions on CIFAR10-B / CIFAR100-B / cifar100-super, "
        "or on any dataset given as a groups or metadata file (--groups).",
        epilog=FORMATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("predictions", metavar="PREDICTIONS", help="predictions file (.npy, .npz, .csv, .parquet)")
    parser.add_argument("--dataset", choices=("cifar10-b", "cifar100-b", "cifar100-super", "cifar10.1"),
                        help="which test set the predictions are for (or give --groups)")
    parser.add_argument("--cifar10-1-version", choices=("v6", "v4"), default="v6",
                        help="CIFAR-10.1 version of --dataset cifar10.1 (default v6)")
    add_root_args(parser)
    parser.add_argument("--groups", metavar="FILE",
                        help="bring your own labels and subgroups: a groups, SubpopBench or WILDS-style file")
    parser.add_argument("--name", help="dataset name in the result with --groups (default: the file's stem)")
    parser.add_argument("--split", help="with --groups: rows of this split only (train|val|test or 0|1|2; "
                        "SubpopBench metadata defaults to test)")
    parser.add_argument("--group-by", type=comma_list, metavar="A,B",
                        help="with --groups: WILDS-style metadata, subgroups from these fields' combinations")
    parser.add_argument("--predictions", dest="predicted", choices=("fine", "coarse"),
                        help="cifar100-super only: the predictions are fine (default) or coarse class ids")
    parser.add_argument("--json", metavar="FILE", help="also write the result JSON to FILE (atomically)")
    add_metric_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.json and Path(args.json).is_dir():
        raise UsageError(f"--json {args.json} is a directory; give a file path")
    if args.dataset and args.groups:
        raise UsageError("give either --dataset or --groups FILE, not both")
    if not args.dataset and not args.groups:
        raise UsageError("give --dataset cifar10-b|cifar100-b|cifar100-super or --groups FILE")
    if args.predicted and args.dataset != "cifar100-super":
        raise UsageError("--predictions fine|coarse applies to --dataset cifar100-super only")
    if args.dataset == "cifar10.1":  # labels from the data root, no subgroups (cifarb.reference.cifar10_1)
        from cifarb.reference.cifar10_1 import run_metrics

        return run_metrics(args)

    from cifarb._atomic import atomic_write_json
    from cifarb.eval.predictions import read_and_score
    from cifarb.metrics.table import format_result

    path = Path(args.predictions)
    result, _ = read_and_score(
        path, dataset=args.dataset, groups=args.groups, name=args.name, split=args.split, group_by=args.group_by,
        predicted=args.predicted or "fine", subgroup_names=args.subgroup_names, bootstrap=args.bootstrap,
        seed=args.seed, min_cell_size=args.min_cell_size, min_cell_size_worst=args.min_cell_size_worst,
        permutations=args.permutations,
    )
    what = "samples" if args.groups else "test images"
    print(format_result(result, title=f"{result['dataset']}: {path} ({result['n_images']:,} of "
                                      f"{result['n_official']:,} {what})"))
    if args.json:
        atomic_write_json(args.json, result)
        print(f"\nwrote {args.json}")
    return 0
