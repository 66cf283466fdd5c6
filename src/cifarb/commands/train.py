"""`cifarb train`: train a classifier with a data augmentation into a run directory (resumable, DDP-ready)."""

from __future__ import annotations

import argparse
import os
import sys

from cifarb.commands._common import (
    add_root_args,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)

DESCRIPTION = """\
Train a CIFAR classifier with a data augmentation and evaluate it on CIFAR-B at the end.

The run directory (--out) receives manifest.json (the full config, hyperparameters, versions, input
sha256s, git commit), metrics.jsonl (one "epoch" line per epoch, an "eval" line at the end),
checkpoints/last.pt (written atomically after every epoch), eval/<dataset>-b.json and
predictions/<dataset>-b.parquet. An interrupted run continues with --resume.

Unset hyperparameters come from the architecture's recipe (see below); --epochs N rescales the LR
schedule to N epochs. Augmentations compose with '+', e.g. --aug standard+mixup.
Multi-GPU / multi-process: torchrun --nproc_per_node=N -m cifarb train ... (gloo on CPU, nccl on GPU;
--batch-size is the global batch).
"""


def _epilog() -> str:
    from cifarb.train.hparams import RECIPES

    lines = ["Recipes (lr, weight decay, batch, epochs, schedule):"]
    for arch, r in RECIPES.items():
        extra = " nesterov" if r.nesterov else ""
        if r.label_smoothing:
            extra += f", label smoothing {r.label_smoothing:g}"
        lines.append(
            f"  {arch:<18} {r.optimizer}{extra} lr {r.lr:g}, wd {r.weight_decay:g}, batch {r.batch_size}, "
            f"{r.epochs} epochs, {r.schedule}"
        )
    lines += [
        "Override any recipe field with --hparam KEY=VALUE (TOML value syntax), e.g. --hparam momentum=0.85,",
        "or in a --config FILE.toml: top-level keys are these flags' names (dataset = \"cifar10\"),",
        "and an [hparams] table holds recipe fields. Flags given on the command line win over the file.",
        "Exit status: 0 success, 1 user error (missing data, diverged loss, ...), 2 usage error.",
    ]
    return "\n".join(lines)


def _hparam(text: str) -> tuple[str, object]:
    import tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()  # a bare word such as cosine
    return key.strip().replace("-", "_"), parsed


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a classifier with a data augmentation (resumable, DDP under torchrun)",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", choices=("cifar10", "cifar100"), help="training set (required)")
    p.add_argument("--arch", metavar="NAME", help="architecture (required): resnet20|32|44|56|110, resnet18, "
                   "wrn28_10, fastnet, resnet18_imagenet, resnet50_imagenet")
    p.add_argument("--aug", metavar="METHOD[+METHOD...]", help="augmentation (required): none, standard, cutout, "
                   "autoaugment, randaugment, trivialaugment, augmix, mixup, cutmix, flowaug; join with '+'")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="epochs (default: the recipe's); rescales the schedule")
    p.add_argument("--seed", type=non_negative_int, metavar="S", help="random seed (default 0)")
    p.add_argument("--out", metavar="RUNDIR", help="run directory (default runs/<timestamp>-<arch>-<aug>-s<seed>); "
                   "must be absent or empty unless --resume")
    p.add_argument("--resume", action="store_true", default=None, help="continue the run in --out from its last checkpoint")
    add_root_args(p)
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="global batch size (default: the recipe's)")
    p.add_argument("--lr", type=positive_float, metavar="X", help="peak learning rate (default: the recipe's)")
    p.add_argument("--weight-decay", type=_non_negative_float, metavar="X", help="weight decay (default: the recipe's)")
    p.add_argument("--device", metavar="D", help="auto (default: cuda if present), cpu, cuda, cuda:N")
    p.add_argument("--workers", type=non_negative_int, metavar="N",
                   help="DataLoader worker processes for per-sample augmentations (default: 0 on CPU, where the "
                        "model uses every core; on CUDA min(8, cores per process - 1))")
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file (flags win)")
    p.add_argument("--hparam", type=_hparam, action="append", metavar="KEY=VALUE",
                   help="override a recipe field (momentum, nesterov, schedule, milestones, gamma, warmup, "
                   "label_smoothing, ...); repeatable")
    p.add_argument("--image-size", type=positive_int, metavar="PX",
                   help="input size of the *_imagenet architectures (default 224; images are upsampled)")
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None,
                   help="start *_imagenet architectures from torchvision's ImageNet weights (default: yes)")
    p.add_argument("--augmix-jsd", action=argparse.BooleanOptionalAction, default=None,
                   help="AugMix's Jensen-Shannon consistency loss (default: on)")
    p.add_argument("--limit-train", type=positive_int, metavar="N", help="train on the first N training images only")
    p.add_argument("--eval", action=argparse.BooleanOptionalAction, default=None,
                   help="evaluate on CIFAR-B at the end (default: yes)")
    p.add_argument("--permutations", type=non_negative_int, metavar="R",
                   help="within-class permutations behind the final evaluation's p_subgroup_effect, the "
                   "p-value of 'no subgroup effect' (default 999, as eval; 0 turns the test off; recorded in "
                   "the result's settings)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision: bf16 autocast (fp16 + loss scaling on GPUs without bf16); default: "
                   "on CUDA only; may change on --resume")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (default: on CUDA only; on CPU it needs a C compiler); "
                   "may change on --resume")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bars or per-epoch lines on stderr")
    flow = p.add_argument_group("FlowAug (with --aug ...+flowaug)")
    flow.add_argument("--flow", metavar="CKPT", help="flow checkpoint (last.pt) or flow run directory")
    flow.add_argument("--flowaug-p", type=probability, metavar="P", help="probability of augmenting an image (default 0.5)")
    flow.add_argument("--flowaug-tau", type=positive_float, metavar="T", help="latent temperature (default 1.0)")
    flow.add_argument("--flowaug-mode", choices=("online", "offline"), help="default online")
    flow.add_argument("--flowaug-swap", choices=("any", "class"), help="default any")
    from cifarb.commands._common import add_threads_arg, add_tracker_arg

    add_threads_arg(p, "training (torch intra-op threads)")
    add_tracker_arg(p, "the final result")
    p.set_defaults(func=run)


_FIELDS = (
    "dataset", "arch", "aug", "epochs", "seed", "out", "resume", "root", "trust_local", "batch_size", "lr",
    "weight_decay", "device", "workers", "image_size", "pretrained", "augmix_jsd", "limit_train", "eval",
    "amp", "compile", "progress", "flow", "flowaug_p", "flowaug_tau", "flowaug_mode", "flowaug_swap", "log",
    "permutations",
)


def run(args: argparse.Namespace) -> int:
    from cifarb._threads import apply_threads
    from cifarb.train.config import build_config, load_config_file

    apply_threads(args.threads)
    if args.log:
        from cifarb.train.trackers import check_installed, parse_log

        names = parse_log(args.log)
        check_installed(names)  # unknown or missing trackers fail before anything is written
        args.log = ",".join(names)
    from cifarb.train.engine import run as run_training

    cli = {name: getattr(args, name) for name in _FIELDS}
    if not cli["trust_local"]:
        cli["trust_local"] = None  # store_true: absent means "not given"
    if args.hparam:
        cli["hparams"] = dict(args.hparam)
    given = {k for k, v in cli.items() if v is not None}
    if args.config:
        given |= set(load_config_file(args.config))
    cfg = build_config(cli, args.config)
    result = run_training(cfg, given)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        print(result.rundir)
        sys.stdout.flush()
    return 0
