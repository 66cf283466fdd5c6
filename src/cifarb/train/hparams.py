"""Per-architecture training recipes (optimizer, LR schedule, weight decay, batch size, epochs): one registry.

Schedules are expressed in fractions of the whole run, so `--epochs N` rescales them to N epochs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from cifarb.errors import CifarbError

SCHEDULES = ("cosine", "step", "onecycle", "constant")
TTA_MODES = ("none", "flip", "flip+translate")  # the same as cifarb.eval.tta.TTA_MODES (kept torch-free here)
OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class Recipe:
    """Everything the loop needs besides the model and the data; every field is saved in the manifest."""

    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    schedule: str
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    # step: LR multiplied by `gamma` at each milestone, given as a fraction of the run
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    # linear warm-up from `warmup_start` x lr over this fraction of the run (all schedules)
    warmup: float = 0.0
    warmup_start: float = 0.1
    # onecycle: the LR falls linearly from lr (at the end of the warm-up) to `final` x lr
    final: float = 0.0
    label_smoothing: float = 0.0
    # no weight decay on BN weights and biases (common for short schedules)
    decay_norm_and_bias: bool = True
    # multiplies the LR of BN/bias parameters (airbench trains them faster); their weight decay per
    # step stays lr x weight_decay, as in airbench
    norm_bias_lr_scale: float = 1.0
    # call the model's data-dependent init (fastnet's init_whitening) on the first training images
    data_init: bool = False
    # test-time augmentation of the final evaluation: "none", "flip" (mean logits of the image and its
    # mirror image) or "flip+translate" (6 views; see cifarb.eval.tta); its cost is part of the run's time
    tta: str = "none"
    # apply `tta` to the per-epoch test pass as well (its cost is then part of every epoch's time); off,
    # the per-epoch test accuracy is the plain one and only the final evaluation pays for the views
    tta_each_epoch: bool = True
    # exponential moving average of the weights (0: off), evaluated and saved instead of the raw weights;
    # it starts at `ema_start` (a fraction of the run), before which it copies the weights
    ema_decay: float = 0.0
    ema_start: float = 0.0
    # the recipe's origin, so a reader can check it
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


_RESNET_CIFAR = Recipe(
    lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=200, schedule="step",
    milestones=(0.5, 0.75), gamma=0.1,
    source="He et al. 2016 / pytorch_resnet_cifar10: SGD 0.1, momentum 0.9, wd 1e-4, batch 128, "
    "x0.1 at epochs 100 and 150 of 200",
)

# chenyaofo/pytorch-cifar-models: the recipe all 38 of its training logs record (SGD with weight decay on
# every parameter, cosine to 0)
_CHENYAOFO = Recipe(
    lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=256, epochs=200, schedule="cosine",
    source="chenyaofo/pytorch-cifar-models training logs: SGD-nesterov 0.1, momentum 0.9, wd 5e-4, batch 256, "
    "cosine to 0 over 200 epochs",
)

# both torchvision ImageNet ResNets are fine-tuned the same way
_IMAGENET_FINETUNE = Recipe(
    lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=64, epochs=15, schedule="cosine",
    warmup=0.05, warmup_start=0.1,
    source="fine-tuning torchvision ImageNet weights on CIFAR at 224 px: SGD 0.01, momentum 0.9, "
    "wd 5e-4, cosine",
)

RECIPES: dict[str, Recipe] = {
    "resnet20": _RESNET_CIFAR,
    "resnet32": _RESNET_CIFAR,
    "resnet44": _RESNET_CIFAR,
    "resnet56": _RESNET_CIFAR,
    # ResNet-110 needs a short warm-up at 0.01 before 0.1 (He et al. 2016, sec. 4.2)
    "resnet110": dataclasses.replace(
        _RESNET_CIFAR, warmup=0.005, warmup_start=0.1,
        source=_RESNET_CIFAR.source + "; ResNet-110: warm-up at 0.01 for the first epoch",
    ),
    "resnet18": Recipe(
        lr=0.1, momentum=0.9, weight_decay=5e-4, batch_size=128, epochs=200, schedule="cosine",
        source="kuangliu/pytorch-cifar ResNet18: SGD 0.1, momentum 0.9, wd 5e-4, batch 128, cosine over 200 epochs",
    ),
    "wrn28_10": Recipe(
        lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=128, epochs=200, schedule="step",
        milestones=(0.3, 0.6, 0.8), gamma=0.2,
        source="Zagoruyko & Komodakis 2016: SGD-nesterov 0.1, momentum 0.9, wd 5e-4, batch 128, "
        "x0.2 at epochs 60, 120, 160 of 200",
    ),
    # airbench94's settings in PyTorch's mean-loss convention at batch 256 (its lr 11.5, wd 0.0153 and
    # bias scale 64 are per 1024-sample "kilostep": lr = 11.5 * 256 / (1024 * (1 + 1 / (1 - 0.85))))
    "fastnet": Recipe(
        lr=0.375, momentum=0.85, nesterov=True, weight_decay=1.333e-3, batch_size=256, epochs=30,
        schedule="onecycle", warmup=0.23, warmup_start=0.2, final=0.07, label_smoothing=0.2,
        norm_bias_lr_scale=64.0, data_init=True,
        source="airbench94 (Jordan 2024): SGD-nesterov momentum 0.85, label smoothing 0.2, triangular "
        "one-cycle 0.2 -> 1 at 23 % -> 0.07, BN biases at 64x lr, whitening init of the stem",
    ),
    "resnet18_imagenet": _IMAGENET_FINETUNE,
    "resnet50_imagenet": _IMAGENET_FINETUNE,
    **dict.fromkeys((
        "resnet20_b", "resnet32_b", "resnet44_b", "resnet56_b", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
        "mobilenetv2_x0_5", "mobilenetv2_x0_75", "mobilenetv2_x1_0", "mobilenetv2_x1_4", "shufflenetv2_x0_5",
        "shufflenetv2_x1_0", "shufflenetv2_x1_5", "shufflenetv2_x2_0", "repvgg_a0", "repvgg_a1", "repvgg_a2",
    ), _CHENYAOFO),
}

# Fields a config's [hparams] table may override (lr/weight_decay/batch_size/epochs also have flags).
OVERRIDABLE = tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in ("source", "extra"))


def recipe_for(arch: str) -> Recipe:
    """The default recipe of `arch` (a contract architecture name)."""
    try:
        return RECIPES[arch]
    except KeyError:
        raise CifarbError(f"no training recipe for architecture {arch!r}; choose one of: {', '.join(RECIPES)}") from None


def resolve_recipe(arch: str, overrides: dict[str, Any] | None = None, where: str = "hparams") -> Recipe:
    """The recipe of `arch` with `overrides` applied and checked; `where` names their origin in errors."""
    base = recipe_for(arch)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise CifarbError(f"{where}: unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(OVERRIDABLE)}")
    if "milestones" in overrides:
        if not isinstance(overrides["milestones"], (list, tuple)):
            raise CifarbError(f"{where}: milestones = {overrides['milestones']!r} must be a list of increasing "
                              "fractions of the run in (0, 1), e.g. [0.5, 0.75]")
        overrides["milestones"] = tuple(overrides["milestones"])
    try:
        recipe = dataclasses.replace(base, **overrides)
    except TypeError as exc:
        raise CifarbError(f"{where}: {exc}") from None
    validate_recipe(recipe, where)
    return recipe


def validate_recipe(r: Recipe, where: str = "hparams") -> None:
    """Raise CifarbError naming the first bad value."""

    def bad(name: str, why: str) -> CifarbError:
        return CifarbError(f"{where}: {name} = {getattr(r, name)!r} {why}")

    def number(name: str) -> float:
        value = getattr(r, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(name, "must be a finite number")
        return float(value)

    if number("lr") <= 0:
        raise bad("lr", "must be positive")
    if number("weight_decay") < 0:
        raise bad("weight_decay", "must be >= 0")
    for name in ("batch_size", "epochs"):
        value = getattr(r, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise bad(name, "must be a positive integer")
    if r.schedule not in SCHEDULES:
        raise bad("schedule", f"is unknown; choose one of: {', '.join(SCHEDULES)}")
    if r.optimizer not in OPTIMIZERS:
        raise bad("optimizer", f"is unknown; choose one of: {', '.join(OPTIMIZERS)}")
    if not 0 <= number("momentum") < 1:
        raise bad("momentum", "must be in [0, 1)")
    if r.nesterov and r.momentum == 0:
        raise bad("nesterov", "needs momentum > 0")
    if not all(isinstance(m, (int, float)) and 0 < m < 1 for m in r.milestones) or list(r.milestones) != sorted(
        r.milestones
    ):
        raise bad("milestones", "must be increasing fractions of the run in (0, 1), e.g. [0.5, 0.75]")
    if not 0 < number("gamma") <= 1:
        raise bad("gamma", "must be in (0, 1]")
    if not 0 <= number("warmup") < 1:
        raise bad("warmup", "must be a fraction of the run in [0, 1)")
    for name in ("warmup_start", "final"):
        if not 0 <= number(name) <= 1:
            raise bad(name, "must be a factor of lr in [0, 1]")
    if not 0 <= number("label_smoothing") < 1:
        raise bad("label_smoothing", "must be in [0, 1)")
    if number("norm_bias_lr_scale") <= 0:
        raise bad("norm_bias_lr_scale", "must be positive")
    if r.tta not in TTA_MODES:
        raise bad("tta", f"is unknown; choose one of: {', '.join(TTA_MODES)}")
    if not (number("ema_decay") == 0 or 0 < r.ema_decay < 1):
        raise bad("ema_decay", "must be 0 (off) or in (0, 1), e.g. 0.99")
    if not 0 <= number("ema_start") < 1:
        raise bad("ema_start", "must be a fraction of the run in [0, 1)")
    for name in ("nesterov", "decay_norm_and_bias", "data_init", "tta_each_epoch"):
        if not isinstance(getattr(r, name), bool):
            raise bad(name, "must be true or false")


class LRSchedule:
    """LR factor per optimizer step for a recipe rescaled to `total_steps`; picklable, used with LambdaLR."""

    def __init__(self, recipe: Recipe, epochs: int, steps_per_epoch: int) -> None:
        self.schedule = recipe.schedule
        self.total = max(1, epochs * steps_per_epoch)
        self.warmup_steps = int(round(recipe.warmup * self.total))
        self.warmup_start = recipe.warmup_start
        self.final = recipe.final
        self.gamma = recipe.gamma
        # milestones scale with the run; for the published epoch counts they land on epoch boundaries
        self.milestone_steps = [int(round(m * self.total)) for m in recipe.milestones]

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            t = step / self.warmup_steps
            warm = self.warmup_start + (1.0 - self.warmup_start) * t
        else:
            warm = 1.0
        if self.schedule == "constant":
            return warm
        if self.schedule == "step":
            return warm * self.gamma ** sum(step >= m for m in self.milestone_steps)
        # cosine and onecycle run from the end of the warm-up to the last step
        span = max(1, self.total - self.warmup_steps)
        t = min(1.0, max(0.0, (step - self.warmup_steps) / span))
        if self.schedule == "cosine":
            return warm * (self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * t)))
        return warm * (1.0 + (self.final - 1.0) * t)  # onecycle: linear decay
