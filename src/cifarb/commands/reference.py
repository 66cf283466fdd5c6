"""`cifarb reference`: 30 published CIFAR-10 classifiers on CIFAR10-B and CIFAR-10.1, and where your model falls."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cifarb.commands._common import add_metric_args, add_root_args, comma_list, non_negative_int
from cifarb.errors import CifarbError, UsageError

EPILOG = """\
The reference models are the 30 classifiers whose predictions the CIFAR-10.1 authors published (MIT;
Recht et al. 2018): ResNet-32..110, PreAct-ResNet, WRN-28-10, Shake-Shake, ShakeDrop, PyramidNet,
DenseNet-BC, ResNeXt, VGG, NAS, DARC, cuda-convnet, AlexNet and random-features models, on the full
CIFAR-10 test set. cifarb bundles their predictions and their CIFAR-10.1 accuracies (not the CIFAR-10.1
labels); --root DIR with the CIFAR-10.1 files recomputes those accuracies from the labels.

--add NAME=FILE places your model among them. FILE is a predictions file as `cifarb metrics` reads it
(.npy/.npz: 10,000 ids; .csv/.parquet: index,prediction on any subset), a CIFAR10-B result JSON on the
full test set, or a run directory (its predictions/cifar10-b.parquet, else eval/cifar10-b.json). On a
subset every reference model is re-scored on exactly the same images (several --add: their
intersection). Each added model with per-image predictions gets a paired comparison with the
reference model nearest in accuracy.

Examples:
  cifarb reference                                   # the table, sorted by accuracy
  cifarb reference --analysis --bootstrap 200        # + correlations with CIFAR-10.1
  cifarb reference --add mine=preds.csv --html ref.html
  cifarb reference --models wrn_28_10,resnet_basic_56 --format md
"""


# the keys of cifarb.reference.render.SORT_KEYS, repeated here so building the parser imports no numpy
SORT_CHOICES = ("accuracy", "discrepancy", "macro_std", "excess", "adjusted", "cifar10.1", "cifar10.1-v4", "drop",
                "name")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reference",
        help="30 published CIFAR-10 classifiers on CIFAR10-B and CIFAR-10.1; place your own model among them",
        description="Score the bundled reference models on CIFAR10-B (accuracy, MacroStd, noise floor, excess, "
        "the discrepancy estimate with its CI, worst subgroup, per-subgroup accuracy) next to their "
        "CIFAR-10.1 v4/v6 accuracy and the CIFAR-10 -> 10.1 drop.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--add", action="append", default=[], metavar="NAME=FILE",
                        help="add a model: predictions file, full-set result JSON or run directory (repeatable)")
    parser.add_argument("--models", type=comma_list, metavar="A,B,...",
                        help="only these reference models (file stems, case preserved; see --list)")
    parser.add_argument("--list", action="store_true", help="list the reference models and their cards, then exit")
    parser.add_argument("--sort", choices=SORT_CHOICES, default="accuracy",
                        help="sort rows by this column (default accuracy; natural direction, --reverse flips)")
    parser.add_argument("--reverse", action="store_true", help="reverse the sort direction")
    parser.add_argument("--analysis", action="store_true",
                        help="print correlations of the metrics with CIFAR-10.1 accuracy and the drop (partial "
                        "given CIFAR-10 accuracy, bootstrap CIs over models)")
    parser.add_argument("--analysis-bootstrap", type=non_negative_int, default=2000, metavar="B",
                        help="resamples of the models for the correlation CIs (default 2000)")
    parser.add_argument("--format", choices=("text", "md", "csv"), default="text",
                        help="what to print: the text table (default), Markdown or CSV")
    parser.add_argument("--json", metavar="FILE", help="write the full table, comparisons and analysis as JSON")
    parser.add_argument("--csv", metavar="FILE", help="write the table as CSV")
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with the figure")
    add_root_args(parser)
    parser.add_argument("--cifar10-1-version", choices=("v6", "v4"), default="v6",
                        help="with --root: which CIFAR-10.1 labels recompute the accuracies (default v6; the other "
                        "version keeps its shipped numbers)")
    add_metric_args(parser)
    parser.set_defaults(func=run)


def _result_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CifarbError(f"cannot read {path} as a result JSON ({exc}); is it damaged?") from None


def _cifar10_1_of(result: dict[str, Any]) -> dict[str, float]:
    """{"v6"/"v4": accuracy} of a full-set CIFAR-10.1 result, else {}."""
    from cifarb.data.registry import CIFAR10_1_SIZES

    if result.get("dataset") != "cifar10.1" or result.get("n_images") != result.get("n_official"):
        return {}
    version = next((v for v, n in CIFAR10_1_SIZES.items() if n == result.get("n_official")), None)
    return {version: float(result["accuracy"])} if version and result.get("accuracy") is not None else {}


def load_added(spec: str, class_names: list[str]) -> Any:
    """An AddedModel from NAME=FILE (predictions file, result JSON or run directory)."""
    from cifarb.data.predictions import read_predictions
    from cifarb.reference.score import AddedModel

    name, sep, file = spec.partition("=")
    name, file = name.strip(), file.strip()
    if not sep or not name or not file:
        raise UsageError(f"--add {spec!r}: expected NAME=FILE, e.g. --add mine=predictions.csv")
    path = Path(file)
    if path.is_dir():
        parquet, result = path / "predictions" / "cifar10-b.parquet", path / "eval" / "cifar10-b.json"
        c101 = path / "eval" / "cifar10.1.json"
        extra = _cifar10_1_of(_result_json(c101)) if c101.is_file() else {}
        if parquet.is_file():
            idx, preds = read_predictions(parquet, class_names)
            return AddedModel(name, idx, preds, source=str(parquet), cifar10_1=extra)
        if result.is_file():
            return AddedModel(name, result=_result_json(result), source=str(result), cifar10_1=extra)
        raise CifarbError(f"{path}: a directory without predictions/cifar10-b.parquet or eval/cifar10-b.json; give a "
                          "run directory evaluated on cifar10-b (`cifarb eval --model RUNDIR --dataset cifar10-b --out "
                          "RUNDIR`), a predictions file or a result JSON")
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise CifarbError(f"{path}: does not exist; give a result JSON, predictions file or run directory")
        return AddedModel(name, result=_result_json(path), source=str(path))
    idx, preds = read_predictions(path, class_names)
    return AddedModel(name, idx, preds, source=str(path))


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    for flag in ("json", "csv", "html"):
        value = getattr(args, flag)
        if value and Path(value).is_dir():
            raise UsageError(f"--{flag} {value} is a directory; give a file path")

    from cifarb._atomic import atomic_write_json, atomic_write_text
    from cifarb.data.cifar_b import class_names, load_cifar_b
    from cifarb.reference import render
    from cifarb.reference.bundle import load_reference
    from cifarb.reference.score import score

    ref = load_reference()
    if args.list:
        width = max(len(n) for n in ref.names)
        for name in ref.names:
            card = ref.cards[name]
            facts = ", ".join(f"{k} {v}" for k, v in card.name_says.items())
            print(f"{name:<{width}}  {card.display_name} [{card.family}]" + (f" ({facts})" if facts else ""))
        return 0
    if args.models:
        ref.check_names(args.models)
    load_cifar_b("cifar10", args.subgroup_names)  # a bad --subgroup-names fails before any work
    added = [load_added(spec, class_names("cifar10")) for spec in args.add]
    labels = None
    if args.root is not None:
        from cifarb.reference.cifar10_1 import load_cifar10_1_labels

        got = load_cifar10_1_labels(args.root, args.cifar10_1_version, args.trust_local)
        labels = {got.version: got.labels}
    table = score(args.models, added, bootstrap=args.bootstrap, seed=args.seed,
                  permutations=getattr(args, "permutations", None), min_cell_size=args.min_cell_size,
                  min_cell_size_worst=args.min_cell_size_worst, cifar10_1_labels=labels,
                  analysis_bootstrap=args.analysis_bootstrap, subgroup_names=args.subgroup_names)
    if args.root is not None:
        table["settings"]["cifar10_1_labels"] = {"path": str(got.path), "sha256": got.sha256,
                                                 "verified": got.verified}
    if args.format == "md":
        print(render.markdown_table(table, args.sort, args.reverse), end="")
    elif args.format == "csv":
        print(render.csv_text(table, args.sort, args.reverse), end="")
    else:
        print(render.text_table(table, args.sort, args.reverse))
        ranks = render.rank_lines(table)
        if ranks:
            print("", *ranks, sep="\n")
        if args.analysis:
            print("", *render.analysis_lines(table), sep="\n")
    for flag, write in (("json", lambda p: atomic_write_json(p, table)),
                        ("csv", lambda p: atomic_write_text(p, render.csv_text(table, args.sort, args.reverse))),
                        ("html", lambda p: atomic_write_text(p, render.html_page(table, args.sort, args.reverse)))):
        path = getattr(args, flag)
        if path:
            write(path)
            if args.format == "text":
                print(f"wrote {path}")
    return 0
