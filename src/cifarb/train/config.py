"""TrainConfig: every setting of one training run, from flags, a TOML file (`--config`) or Python."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarb.errors import CifarbError, UsageError, did_you_mean

DATASETS = ("cifar10", "cifar100")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
FLOWAUG_MODES = ("online", "offline")
FLOWAUG_SWAPS = ("any", "class")


@dataclass
class TrainConfig:
    """One training run. `None` means "the architecture's recipe default" (see cifarb.train.hparams)."""

    dataset: str | None = None
    arch: str | None = None
    aug: str | None = None
    epochs: int | None = None
    seed: int = 0
    out: str | None = None
    resume: bool = False
    root: str | None = None
    trust_local: bool = False
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    device: str = "auto"
    # DataLoader worker processes for per-sample ("sample" stage) augmentations; None: automatic
    workers: int | None = None
    # input size of the *_imagenet architectures (upsampled from 32); None: the model's default (224)
    image_size: int | None = None
    # ImageNet weights for the *_imagenet architectures; None: yes for those, ignored otherwise
    pretrained: bool | None = None
    augmix_jsd: bool = True
    # train on the first N training images only (quick experiments and tests)
    limit_train: int | None = None
    # evaluate on CIFAR-B at the end (eval/<dataset>-b.json, predictions/<dataset>-b.parquet)
    eval: bool = True
    eval_bootstrap: int = 1000
    # within-class permutations of the final evaluation's p_subgroup_effect (0: off); as `eval --permutations`
    permutations: int = 999
    progress: bool = True
    flow: str | None = None
    flowaug_p: float = 0.5
    flowaug_tau: float = 1.0
    flowaug_mode: str = "online"
    flowaug_swap: str = "any"
    channels_last: bool = True
    # None: on when training on CUDA, off on CPU
    amp: bool | None = None
    compile: bool | None = None
    # overrides of the recipe (momentum, schedule, milestones, label_smoothing, ...)
    hparams: dict[str, Any] = field(default_factory=dict)
    # experiment trackers mirroring metrics.jsonl (cifarb.train.trackers): "tensorboard,mlflow,wandb"
    log: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Settings that may differ when resuming: where and how the run executes, not what it computes.
# AMP and compile change the arithmetic only at rounding level; a change of them is recorded in the
# manifest's `resumes` entry (RESUME_CHANGEABLE), so a compiled run resumes uncompiled and the reverse.
RESUME_CHANGEABLE = frozenset({"amp", "compile"})
RUNTIME_FIELDS = frozenset(
    {"out", "resume", "root", "trust_local", "device", "workers", "progress", "eval", "threads", "log"}
) | RESUME_CHANGEABLE
# Settings a resume may raise (never lower): the run is extended, and the manifest's resumes record it.
EXTENDABLE_FIELDS = frozenset({"epochs"})

_TOML_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "dict[str, Any]": (dict,)}


def _allowed_types(annotation: str) -> tuple[type, ...]:
    """Python types a TOML value may have for a field annotated `annotation` (e.g. "float | None")."""
    types: list[type] = []
    for part in annotation.split("|"):
        types.extend(_TOML_TYPES.get(part.strip(), ()))
    return tuple(types)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {f.name: _allowed_types(str(f.type)) for f in dataclasses.fields(TrainConfig)}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config: top-level keys are TrainConfig fields (dashes allowed), [hparams] overrides the recipe."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise CifarbError(f"--config {p} does not exist; give the path of a TOML file") from None
    except IsADirectoryError:
        raise CifarbError(f"--config {p} is a directory; give the path of a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CifarbError(f"--config {p} is not valid TOML ({exc}); fix the file") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in _FIELD_TYPES:
            known = ", ".join(sorted(_FIELD_TYPES))
            raise CifarbError(f"--config {p}: unknown key {key!r}; known keys: {known}")
        if name in ("out", "resume"):
            raise CifarbError(f"--config {p}: {key!r} belongs on the command line (--{key}), not in a config file")
        allowed = _FIELD_TYPES[name]
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if not ok:
            want = " or ".join(t.__name__ for t in allowed)
            raise CifarbError(f"--config {p}: {key} = {value!r} should be of type {want}")
        out[name] = dict(value) if isinstance(value, dict) else value
    return out


def build_config(cli: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """Merge TrainConfig defaults < the TOML file < flags given on the command line (None = not given)."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    for key, value in cli.items():
        if value is None:
            continue
        if key not in _FIELD_TYPES:
            raise ValueError(f"not a TrainConfig field: {key}")
        if key == "hparams":
            values["hparams"] = {**values.get("hparams", {}), **value}
        else:
            values[key] = value
    return TrainConfig(**values)


def validate_config(cfg: TrainConfig) -> None:
    """Check every plain value (no I/O): UsageError for bad flags, naming the flag and the fix."""
    from cifarb.models import ARCHS

    for name in ("dataset", "arch", "aug"):
        if not getattr(cfg, name):
            raise UsageError(f"--{name} is required (on the command line or in the --config file)")
    if cfg.dataset not in DATASETS:
        raise UsageError(f"--dataset {cfg.dataset!r} is unknown; choose one of: {', '.join(DATASETS)}")
    if cfg.arch not in ARCHS:
        raise UsageError(f"--arch {cfg.arch!r} is unknown{did_you_mean(cfg.arch, ARCHS)}; choose one of: "
                         f"{', '.join(ARCHS)}")

    def positive(name: str, integer: bool) -> None:
        value = getattr(cfg, name)
        if value is None:
            return
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise UsageError(f"{flag} must be a positive {'integer' if integer else 'number'}, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} must be positive, got {value!r}")

    for name in ("epochs", "batch_size", "limit_train", "image_size"):
        positive(name, integer=True)
    positive("lr", integer=False)
    if cfg.weight_decay is not None and not (
        isinstance(cfg.weight_decay, (int, float)) and math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0
    ):
        raise UsageError(f"--weight-decay must be >= 0, got {cfg.weight_decay!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {cfg.seed!r}")
    if cfg.workers is not None and (isinstance(cfg.workers, bool) or not isinstance(cfg.workers, int) or cfg.workers < 0):
        raise UsageError(f"--workers must be >= 0, got {cfg.workers!r}")
    if isinstance(cfg.eval_bootstrap, bool) or not isinstance(cfg.eval_bootstrap, int) or cfg.eval_bootstrap < 0:
        raise UsageError(f"eval_bootstrap must be a non-negative integer, got {cfg.eval_bootstrap!r}")
    if isinstance(cfg.permutations, bool) or not isinstance(cfg.permutations, int) or cfg.permutations < 0:
        raise UsageError(f"--permutations must be a non-negative integer, got {cfg.permutations!r}")
    if cfg.image_size is not None and not cfg.arch.endswith("_imagenet"):
        raise UsageError(f"--image-size applies to the *_imagenet architectures only, not {cfg.arch}; drop it")
    if not 0.0 <= cfg.flowaug_p <= 1.0:
        raise UsageError(f"--flowaug-p must be in [0, 1], got {cfg.flowaug_p!r}")
    if not (math.isfinite(cfg.flowaug_tau) and cfg.flowaug_tau > 0):
        raise UsageError(f"--flowaug-tau must be positive, got {cfg.flowaug_tau!r}")
    if cfg.flowaug_mode not in FLOWAUG_MODES:
        raise UsageError(f"--flowaug-mode must be one of {', '.join(FLOWAUG_MODES)}, got {cfg.flowaug_mode!r}")
    if cfg.flowaug_swap not in FLOWAUG_SWAPS:
        raise UsageError(f"--flowaug-swap must be one of {', '.join(FLOWAUG_SWAPS)}, got {cfg.flowaug_swap!r}")
    methods = aug_methods(cfg.aug)
    if "flowaug" in methods and not cfg.flow:
        raise UsageError("--aug flowaug needs --flow CKPT (a flow checkpoint or flow run directory)")
    if cfg.flow and "flowaug" not in methods:
        raise UsageError(f"--flow is used by --aug flowaug only; --aug is {cfg.aug!r}: add +flowaug or drop --flow")
    if cfg.flow and not Path(cfg.flow).exists():
        raise UsageError(f"--flow {cfg.flow} does not exist; give a flow checkpoint (last.pt) or flow run directory")


def aug_methods(spec: str) -> list[str]:
    """`"standard+mixup"` -> `["standard", "mixup"]` (names are checked by the augment registry)."""
    parts = [p.strip() for p in str(spec).split("+")]
    if not all(parts):
        raise UsageError(f"--aug {spec!r} is malformed; write methods joined by '+', e.g. standard+mixup")
    return parts


def check_resume_compatible(saved: dict[str, Any], cfg: TrainConfig, given: set[str]) -> TrainConfig:
    """The saved run's config, with runtime settings given now; a conflicting explicit setting is a UsageError.

    `given` names the fields the user set explicitly (flags or --config); the rest come from the saved run.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    merged = {k: v for k, v in saved.items() if k in known}
    for name in sorted(given):
        if name in RUNTIME_FIELDS:
            merged[name] = getattr(cfg, name)
        elif name in EXTENDABLE_FIELDS and _is_extension(merged.get(name), getattr(cfg, name)):
            merged[name] = getattr(cfg, name)
        elif name not in merged:  # a field the run's cifarb version did not record: nothing to conflict with
            merged[name] = getattr(cfg, name)
        elif getattr(cfg, name) != merged[name]:
            flag = "--" + name.replace("_", "-")
            more = f", or give a larger {flag} to extend it" if name in EXTENDABLE_FIELDS else ""
            raise UsageError(
                f"--resume: {flag} {getattr(cfg, name)!r} differs from the run's {merged[name]!r} "
                f"(manifest.json); drop {flag} to resume{more}, or start a new run in another --out"
            )
    merged["out"], merged["resume"] = cfg.out, cfg.resume
    return TrainConfig(**merged)


def _is_extension(saved: Any, given: Any) -> bool:
    """A resume may raise an integer setting (more epochs), never lower or retype it."""
    ok = isinstance(saved, int) and isinstance(given, int) and not isinstance(given, bool)
    return ok and given >= saved
