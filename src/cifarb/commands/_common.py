"""Argument helpers shared by several commands (standard library only)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def _checked(text: str, convert: type, ok: Callable[[Any], bool], expected: str, rule: str) -> Any:
    """`convert(text)` if `ok` holds for it; argparse errors that say what was expected otherwise."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{rule}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _checked(text, int, lambda v: v > 0, "a positive integer", "must be positive")


def non_negative_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 0, "a non-negative integer", "must be >= 0")


def positive_float(text: str) -> float:
    return _checked(text, float, lambda v: v > 0, "a positive number", "must be positive")


def probability(text: str) -> float:
    return _checked(text, float, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]", "must be in [0, 1]")


def float_triple(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers R,G,B, got {text!r}")
    return values  # type: ignore[return-value]


def comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def add_root_args(parser: argparse.ArgumentParser, trust_local: bool = True) -> None:
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="data root (default: $CIFARB_DATA, else a per-user cache folder)",
    )
    if trust_local:
        parser.add_argument(
            "--trust-local",
            action="store_true",
            help="accept local files whose checksums do not match the official ones (e.g. a prefix "
            "slice); results then record data_verified: false",
        )


def add_metric_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap", type=non_negative_int, default=1000, metavar="B",
        help="stratified bootstrap resamples for 95%% CIs (default 1000; 0 turns CIs off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--min-cell-size", type=positive_int, default=1, metavar="M",
        help="drop (class, subgroup) cells with fewer than M images from MacroStd only (default 1)",
    )
    parser.add_argument(
        "--min-cell-size-worst", type=positive_int, default=10, metavar="K",
        help="cells need at least K images to count for worst-cell accuracy (default 10)",
    )
    parser.add_argument(
        "--permutations", type=non_negative_int, default=999, metavar="R",
        help="within-class permutations of the subgroup labels behind p_subgroup_effect, the p-value of "
        "'no subgroup effect' (default 999; 0 turns the test off; computed only with --bootstrap > 0)",
    )
    parser.add_argument(
        "--subgroup-names", type=comma_list, metavar="A,B,...",
        help="override the 8 subgroup names (default: the inferred background colours)",
    )


def add_threads_arg(parser: argparse.ArgumentParser, what: str = "this command") -> None:
    """`--threads N`, the thread count `cifarb._threads.apply_threads` then applies."""
    from cifarb._threads import ENV

    parser.add_argument(
        "--threads", type=positive_int, default=None, metavar="N",
        help=f"CPU threads for {what} (default: ${ENV}, else one per core that other work leaves free when "
        "the command starts, at least 1: threads that fight other jobs for the cores only slow both); "
        "recorded in the manifest with what the default saw, and may change on --resume. Give N for "
        "bit-for-bit reruns: the thread count changes the last bits of the arithmetic",
    )


def add_tracker_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """`--log TRACKERS`: the experiment trackers `train/trackers.py` mirrors a run's `what` to."""
    parser.add_argument(
        "--log", metavar="TRACKERS",
        help=f"mirror metrics.jsonl and {what} to tensorboard, mlflow and/or wandb (comma-separated; "
        "optional extras, written locally: RUNDIR/tensorboard, RUNDIR/mlruns or $MLFLOW_TRACKING_URI, "
        "wandb offline in RUNDIR/wandb; may change on --resume)",
    )
