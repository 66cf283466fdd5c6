"""`cifarb eval`: evaluate a model on CIFAR10-B / CIFAR100-B, CIFAR-10-C / CIFAR-100-C or CIFAR-10.1."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarb.commands._common import add_metric_args, add_root_args, comma_list, float_triple, positive_int

DATASETS = ("cifar10-b", "cifar100-b", "cifar10-c", "cifar100-c", "cifar10.1")

DESCRIPTION = """\
Evaluate a classifier and report subgroup discrepancy: accuracy per background-colour subgroup,
the debiased MacroStd with its 95 % CI and the permutation p-value of "no subgroup effect", the
paper's MacroStd with its noise floor and excess, and the worst cell (docs/metrics.md).

MODEL SPEC is one of:
  resnet20|resnet32|resnet44|resnet56|resnet110   zoo models (ResNet20 is bundled; others: see
                                                  `cifarb data where resnet56`)
  chenyaofo-cifar10|cifar100-ARCH                 zoo models of chenyaofo/pytorch-cifar-models, e.g.
                                                  chenyaofo-cifar100-resnet20 (list: docs/evaluation.md)
  PATH.th/.pt/.pth/.safetensors --arch NAME       a checkpoint (the zoo's published files are
                                                  recognised by sha256 and need no --arch)
  RUNDIR                                          a `cifarb train` run directory
  module:callable or file.py:callable             your nn.Module factory, with --mean and --std

Datasets: cifar10-b / cifar100-b (test set + bundled CIFAR-B subgroups), cifar10-c / cifar100-c
(every corruption x severity present, joined with the subgroups; a set made by `cifarb data make-c`
is reported as cifar10-c-local), cifar10.1 (accuracy only: no subgroup labels).
"""

EPILOG = """\
Without --out nothing but --json is written. With --out RUNDIR the result goes to
RUNDIR/eval/<dataset>.json and the predictions to RUNDIR/predictions/<dataset>.parquet.
Examples:
  cifarb eval --model resnet20 --dataset cifar10-b --root ../shared/data --trust-local --json out.json
  cifarb eval --model runs/my-run --dataset cifar10-c --out runs/my-run
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model: accuracy per subgroup, MacroStd (+CI, noise floor), worst cell",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="SPEC", help="zoo name, checkpoint, run directory "
                        "or module:callable (see above)")
    parser.add_argument("--arch", metavar="NAME", help="architecture of a checkpoint file (e.g. resnet56)")
    parser.add_argument("--mean", type=float_triple, metavar="R,G,B",
                        help="input normalisation mean (fractions of 255); overrides the model's own")
    parser.add_argument("--std", type=float_triple, metavar="R,G,B", help="input normalisation std")
    parser.add_argument("--dataset", required=True, type=str.lower, choices=DATASETS, help="evaluation set")
    add_root_args(parser)
    parser.add_argument("--json", metavar="FILE", help="write the result JSON (schema: cifarb/schemas/result.schema.json) here")
    parser.add_argument("--out", metavar="RUNDIR", help="write eval/ and predictions/ into this run directory "
                        "(a new or empty folder, or the run directory given as --model)")
    parser.add_argument("--batch-size", type=positive_int, default=256, metavar="N", help="default 256")
    parser.add_argument("--device", default="auto", metavar="D",
                        help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N (default auto)")
    add_metric_args(parser)
    parser.add_argument("--corruptions", type=comma_list, metavar="A,B,...",
                        help="-C only: evaluate these corruptions (default: every file present)")
    parser.add_argument("--cifar10-1-version", choices=("v6", "v4"), default="v6",
                        help="CIFAR-10.1 version (default v6)")
    parser.add_argument("--save-logits", action="store_true", help="also store logits in the predictions file")
    parser.add_argument("--tta", choices=("none", "flip", "flip+translate"), default="none",
                        help="test-time augmentation: flip = mean logits of each image and its mirror image "
                        "(2x the forward cost); flip+translate = flip, plus flip of the image shifted one "
                        "pixel each way (6x); recorded as settings.tta; default none")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    from cifarb.commands._common import add_threads_arg

    add_threads_arg(parser, "evaluation (torch intra-op threads)")
    parser.set_defaults(func=run)


def _check_out(out: Path, model_spec: str) -> bool:
    """Validate --out before anything is written; True when it is an existing run to add results to."""
    from cifarb.errors import UsageError
    from cifarb.runs import RunDir

    run = RunDir(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory; choose a directory path")
    if run.manifest_path.exists():
        model_path = Path(model_spec).expanduser()
        if model_path.is_dir() and model_path.resolve() == out.resolve():
            return True  # evaluating a run's own model into its own directory
        raise UsageError(f"--out {out} already holds a run; to add results to it, evaluate that run "
                         f"(--model {out}), or choose a new directory")
    run.check_can_start(resume=False)
    return False


def run(args: argparse.Namespace) -> int:
    from cifarb._threads import apply_threads
    from cifarb.errors import UsageError

    apply_threads(args.threads)

    if args.json is not None and Path(args.json).is_dir():
        raise UsageError(f"--json {args.json} is a directory; give a file path")
    if (args.mean is None) != (args.std is None):
        raise UsageError("give --mean and --std together (three comma-separated numbers each)")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.subgroup_names is not None:
        from cifarb.data.cifar_b import resolve_subgroup_names

        resolve_subgroup_names(args.subgroup_names)  # fail before the long pass, not after it
    out = Path(args.out) if args.out else None
    existing_run = _check_out(out, args.model) if out is not None else False

    from cifarb._atomic import atomic_write_json
    from cifarb.eval.evaluate import dataset_info, evaluate, load_eval_data
    from cifarb.eval.settings import EvalSettings
    from cifarb.eval.table import eval_text
    from cifarb.models.zoo import resolve_model
    from cifarb.runs import RunDir, provenance_info

    _, _, n_classes = dataset_info(args.dataset)
    data = load_eval_data(args.dataset, root=args.root, trust_local=args.trust_local,
                          corruptions=args.corruptions, cifar10_1_version=args.cifar10_1_version)
    model = resolve_model(args.model, arch=args.arch, mean=args.mean, std=args.std, num_classes=n_classes)
    rundir = RunDir(out) if out is not None else None
    # Nothing is written before the evaluation succeeds: a failed run leaves no directory behind.
    settings = EvalSettings(bootstrap=args.bootstrap, seed=args.seed, min_cell_size=args.min_cell_size,
                            min_cell_size_worst=args.min_cell_size_worst, permutations=args.permutations,
                            subgroup_names=args.subgroup_names, tta=args.tta, batch_size=args.batch_size,
                            device=args.device, progress=not args.no_progress, save_logits=args.save_logits)
    result = evaluate(model, args.dataset, settings=settings, rundir=rundir, data=data)
    if rundir is not None and not existing_run:
        rundir.write_manifest({
            "kind": "eval",
            "config": {"model": args.model, "arch": model.arch, "model_card": model.card and model.card.name,
                       "dataset": dataset_info(args.dataset)[0], "mean": list(model.mean), "std": list(model.std),
                       "eval_dataset": args.dataset, "batch_size": args.batch_size, "device": args.device,
                       "bootstrap": args.bootstrap, "min_cell_size": args.min_cell_size,
                       "min_cell_size_worst": args.min_cell_size_worst, "subgroup_names": args.subgroup_names,
                       "permutations": args.permutations, "tta": args.tta},
            "seed": args.seed,
            "inputs": {"model_sha256": model.sha256, "data_sha256": dict(data.files)},
            **provenance_info(),
        })
    if args.json is not None:
        atomic_write_json(args.json, result)
    print(eval_text(result, model=args.model))
    if rundir is not None:
        print(f"\nwrote {rundir.eval_path(result['dataset'])} and {rundir.predictions_path(result['dataset'])}")
    if args.json is not None:
        print(f"wrote {args.json}")
    return 0
