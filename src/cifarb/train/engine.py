"""The training loop: validated before writing, seeded, resumable from atomic checkpoints, DDP-aware.

Every random choice is keyed by (seed, epoch, step/index, rank), so a run resumed from the checkpoint of
epoch k repeats exactly what the uninterrupted run would have done from epoch k+1 on. On CUDA the loop
uses autocast (bf16) and torch.compile by default, on CPU on request (`--amp`, `--compile`; see DevicePath).
The run ends with an evaluation on CIFAR-B.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cifarb.errors import CifarbError, UsageError
from cifarb.runs import RunDir, default_run_name, provenance_info
from cifarb.seeds import derive_seed
from cifarb.train import ddp
from cifarb.train.config import (
    NUM_CLASSES,
    RESUME_CHANGEABLE,
    TrainConfig,
    aug_methods,
    check_resume_compatible,
    validate_config,
)
from cifarb.train.data import TrainBatches, eval_batches, normalize, to_nchw
from cifarb.train.device import DevicePath
from cifarb.train.hparams import LRSchedule, Recipe, resolve_recipe

if TYPE_CHECKING:
    from cifarb.eval.settings import EvalSettings

CHECKPOINT_FORMAT = "cifarb-train-1"
# per-channel statistics of the training sets (RGB fractions), and ImageNet's for pretrained backbones
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "elapsed_s")
DATA_INIT_IMAGES = 5000


class Diverged(CifarbError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class RunBook:
    """Run bookkeeping: the effective config, its directory, whether it resumes, and the run seed."""

    cfg: TrainConfig
    rundir: RunDir
    resume: bool
    saved_manifest: dict[str, Any] | None

    @property
    def seed(self) -> int:
        """The run seed; every random purpose derives its own seed from it (cifarb.seeds)."""
        return int(self.cfg.seed)


@dataclass(frozen=True)
class TrainData:
    """The training and test images (uint8 NCHW tensors) and labels, and how they were read."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    info: dict[str, Any]


@dataclass(frozen=True)
class ModelSetup:
    """The network, freshly initialised with torch.manual_seed(run seed), and what rebuilding it needs."""

    module: nn.Module
    arch: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    arch_options: dict[str, Any]  # to rebuild it for loading the checkpoint
    build_options: dict[str, Any]  # what it was built with for training


@dataclass(frozen=True)
class Runtime:
    """Where and how this process executes the run; these may change on resume (RESUME_CHANGEABLE)."""

    device: torch.device
    dist: ddp.DistInfo
    workers: int
    amp: bool
    compile: bool
    channels_last: bool
    progress: bool


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, validated and loaded, before anything is written, by what uses it."""

    run: RunBook
    recipe: Recipe
    pipeline: Any
    data: TrainData
    model: ModelSetup
    runtime: Runtime


@dataclass
class TrainResult:
    rundir: Path
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    eval_result: dict[str, Any] | None = None


def explicit_fields(cfg: TrainConfig) -> set[str]:
    """Fields that differ from TrainConfig's defaults (what a Python caller set)."""
    default = TrainConfig()
    return {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(default, f.name)}


# --- planning: validate everything, write nothing ----------------------------------------------------


def plan(
    cfg: TrainConfig,
    given: set[str] | None = None,
    dist_info: ddp.DistInfo | None = None,
    data: tuple[Any, Any] | None = None,
) -> Plan:
    """Validate the config, the output directory, the data, the augmentation and the model; write nothing.

    `data` = (train, test) ImageSets already loaded by the caller (benchmarks); default: read them from
    the data root with `cifarb.data.readers.load_cifar`.
    """
    given = explicit_fields(cfg) if given is None else set(given)
    info = dist_info or ddp.launched_world()
    saved_manifest = None
    if cfg.resume:
        if not cfg.out:
            raise UsageError("--resume needs --out RUNDIR (the run to continue)")
        rundir = RunDir(cfg.out)
        rundir.check_can_start(resume=True)
        saved_manifest = rundir.read_manifest()
        saved_cfg = saved_manifest.get("config")
        if not isinstance(saved_cfg, dict) or saved_manifest.get("kind") != "train":
            raise CifarbError(f"--resume: {rundir.manifest_path} is not a `cifarb train` manifest; choose another --out")
        cfg = check_resume_compatible(saved_cfg, cfg, given)
    validate_config(cfg)
    assert cfg.dataset and cfg.arch and cfg.aug  # checked by validate_config
    recipe = resolve_recipe(
        cfg.arch,
        {
            **cfg.hparams,
            **{k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "weight_decay") if getattr(cfg, k) is not None},
        },
        where="--config [hparams]" if cfg.hparams else "hyperparameters",
    )
    cfg = dataclasses.replace(
        cfg, epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    if not cfg.resume:
        out = cfg.out or str(Path("runs") / default_run_name(cfg.arch, cfg.aug, cfg.seed))
        cfg = dataclasses.replace(cfg, out=out)
        rundir = RunDir(out)
        rundir.check_can_start(resume=False)

    device = ddp.device_for(cfg.device, info)
    cuda = device.type == "cuda"
    num_classes = NUM_CLASSES[cfg.dataset]
    imagenet = cfg.arch.endswith("_imagenet")
    mean, std = NORMALIZATION["imagenet" if imagenet else cfg.dataset]

    pipeline = _build_pipeline(cfg, recipe, num_classes, mean, std)
    build_options, arch_options = _model_options(cfg)
    # building here catches bad architecture options (and failed weight downloads) before anything is written
    model = _build_model(cfg.arch, num_classes, build_options, seed=cfg.seed)

    train_set, test_set, data_info = _load_data(cfg, data)
    train_images = to_nchw(train_set.images)
    train_labels = torch.as_tensor(train_set.labels, dtype=torch.int64)
    if cfg.limit_train is not None:
        train_images, train_labels = train_images[: cfg.limit_train], train_labels[: cfg.limit_train]
    data_info["train"]["n_used"] = len(train_images)
    if recipe.batch_size > len(train_images):
        raise UsageError(
            f"--batch-size {recipe.batch_size} is larger than the {len(train_images)} training images; "
            "use a smaller --batch-size"
        )
    if recipe.batch_size % info.world:
        raise UsageError(f"--batch-size {recipe.batch_size} must be divisible by the {info.world} DDP processes")
    if not pipeline.has_sample_stage:
        workers = 0
    elif cfg.workers is not None:
        workers = cfg.workers
    elif device.type == "cpu":
        # the model's threads already use every core: a worker process only competes with them
        # (bench/bench_train_step.py, 2 cores: autoaugment at 0.91x the bare loop in-process, 0.78x
        # with one worker)
        workers = 0
    else:
        workers = min(8, max(1, (os.cpu_count() or 2) // info.world - 1))
    return Plan(
        run=RunBook(cfg=cfg, rundir=rundir, resume=cfg.resume, saved_manifest=saved_manifest),
        recipe=recipe,
        pipeline=pipeline,
        data=TrainData(train_images=train_images, train_labels=train_labels, test_images=to_nchw(test_set.images),
                       test_labels=torch.as_tensor(test_set.labels, dtype=torch.int64), info=data_info),
        model=ModelSetup(module=model, arch=cfg.arch, num_classes=num_classes, mean=tuple(mean), std=tuple(std),
                         arch_options=arch_options, build_options=build_options),
        runtime=Runtime(device=device, dist=info, workers=workers, amp=cfg.amp if cfg.amp is not None else cuda,
                        compile=cfg.compile if cfg.compile is not None else cuda, channels_last=cfg.channels_last,
                        progress=cfg.progress),
    )


def _build_pipeline(cfg: TrainConfig, recipe: Recipe, num_classes: int, mean: Any, std: Any) -> Any:
    from cifarb.augment import build_pipeline

    methods = aug_methods(cfg.aug or "")
    opts: dict[str, Any] = {"mean": tuple(mean), "std": tuple(std), "label_smoothing": recipe.label_smoothing}
    if "augmix" in methods:
        opts["augmix_jsd"] = cfg.augmix_jsd
    if "flowaug" in methods:
        opts.update(
            flowaug_flow=cfg.flow, flowaug_p=cfg.flowaug_p, flowaug_tau=cfg.flowaug_tau,
            flowaug_mode=cfg.flowaug_mode, flowaug_swap=cfg.flowaug_swap,
            flowaug_root=cfg.root, flowaug_trust_local=cfg.trust_local, flowaug_seed=cfg.seed,
            flowaug_progress=cfg.progress,
        )
    try:
        return build_pipeline(cfg.aug, num_classes=num_classes, seed=cfg.seed, **opts)
    except CifarbError as exc:
        raise UsageError(f"--aug {cfg.aug}: {exc}") from None


def _model_options(cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options to build the model for training, options to rebuild it for loading the checkpoint)."""
    if not (cfg.arch or "").endswith("_imagenet"):
        if cfg.pretrained:
            raise UsageError(f"--pretrained applies to the *_imagenet architectures only, not {cfg.arch}")
        return {}, {}
    shape = {} if cfg.image_size is None else {"image_size": cfg.image_size}
    pretrained = True if cfg.pretrained is None else bool(cfg.pretrained)
    # the checkpoint holds all weights, so rebuilding it never needs the ImageNet download
    return {**shape, "pretrained": pretrained}, {**shape, "pretrained": False}


def _build_model(arch: str, num_classes: int, options: dict[str, Any], seed: int) -> nn.Module:
    from cifarb.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return build_model(arch, num_classes=num_classes, **options)
        except TypeError as exc:
            raise UsageError(f"--arch {arch}: unsupported option ({exc})") from None


def _load_data(cfg: TrainConfig, data: tuple[Any, Any] | None) -> tuple[Any, Any, dict[str, Any]]:
    if data is not None:
        train_set, test_set = data
    else:
        from cifarb.data.readers import load_cifar

        train_set = load_cifar(cfg.dataset, "train", root=cfg.root, trust_local=cfg.trust_local)
        test_set = load_cifar(cfg.dataset, "test", root=cfg.root, trust_local=cfg.trust_local)

    def describe(s: Any) -> dict[str, Any]:
        return {
            "n_images": int(len(s.labels)), "n_official": int(s.n_official), "verified": bool(s.verified),
            "files": dict(s.files),
        }

    return train_set, test_set, {"dataset": cfg.dataset, "train": describe(train_set), "test": describe(test_set)}


# --- the trainer ----------------------------------------------------------------------------------------


class Trainer:
    """Model, optimizer, schedule and data of one run; `train_step` is the unit the benchmarks time."""

    def __init__(self, p: Plan) -> None:
        self.p = p
        rt, r, data, m = p.runtime, p.recipe, p.data, p.model
        self.device = rt.device
        self.info = rt.dist
        self.channels_last = rt.channels_last
        self.pipeline = p.pipeline
        self.mean, self.std = m.mean, m.std
        self.path = DevicePath(rt.device, amp=rt.amp, compile=rt.compile, channels_last=rt.channels_last)
        self.model = m.module.to(self.device)
        self.mean_t = torch.tensor(m.mean, device=self.device)
        self.std_t = torch.tensor(m.std, device=self.device)
        if r.data_init and hasattr(self.model, "init_whitening"):
            # deterministic: the first (unaugmented) training images; a resumed run overwrites it anyway
            first = data.train_images[:DATA_INIT_IMAGES].to(self.device)
            self.model.init_whitening(normalize(first, self.mean_t, self.std_t, channels_last=False))
        self.model = self.path.place_module(self.model)
        self.forward_model: nn.Module = self.model
        if self.info.enabled:
            self.forward_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        # the compiled wrapper shares the weights: checkpoints hold self.model's plain state dict
        self.forward_model = self.path.compiled(self.forward_model)
        self.optimizer = _make_optimizer(self.model, r)
        # each piece keys its own streams from the run seed (cifarb.seeds purposes)
        seed = p.run.seed
        self.seed = seed
        # pieces that need the whole training set (FlowAug's latent bank / offline pool) get it once here
        for piece in getattr(p.pipeline, "pieces", ()):
            if callable(getattr(piece, "attach", None)):
                piece.attach(data.train_images, data.train_labels, seed=seed)
        self.batches = TrainBatches(
            data.train_images, data.train_labels, r.batch_size, seed=seed, pipeline=p.pipeline,
            workers=rt.workers, device=self.path, rank=self.info.rank, world=self.info.world,
        )
        self.steps_per_epoch = len(self.batches)
        self.schedule = LRSchedule(r, r.epochs, self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.ema = None
        if r.ema_decay > 0:
            from cifarb.train.ema import WeightEMA

            self.ema = WeightEMA(self.model, r.ema_decay, start_step=int(round(r.ema_start * self.schedule.total)))
        self.tta = r.tta
        self.tta_each_epoch = r.tta_each_epoch
        self.amp_dtype = self.path.amp_dtype
        self.scaler = self.path.grad_scaler()
        self.test_images = data.test_images.to(self.device)
        self.test_labels = data.test_labels.to(self.device)
        # on CUDA, checking the loss every step would stall the pipeline; a few steps late is harmless
        self.check_every = 1 if self.device.type == "cpu" else 25
        # what a divergence message names: where the last good checkpoint is, and the LR to lower
        self._diverged = partial(_diverged_message, p.run.rundir, r.lr)

    def _autocast(self) -> Any:
        return self.path.autocast()

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, epoch: int, step: int,
                   indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a uint8 batch (`indices`: its training-set positions, for FlowAug's pool);
        returns (mean loss, number correct) as device tensors."""
        x, targets = self.pipeline.prepare(
            images, labels, epoch=epoch, step=step, rank=self.info.rank, mean=self.mean, std=self.std,
            channels_last=self.channels_last, indices=indices,
        )
        with self._autocast():
            logits = self.forward_model(x)
        loss = self.pipeline.loss(logits, targets)  # in fp32: the pipeline casts the logits (AMP gives bf16)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, self.scheduler.last_epoch - 1)
        correct = (logits[: len(labels)].argmax(1) == labels).sum()
        return loss.detach(), correct

    def train_epoch(self, epoch: int, progress: Any = None) -> dict[str, float]:
        """Train one epoch (0-based); raise Diverged on a non-finite loss."""
        torch.manual_seed(derive_seed(self.seed, "train-epoch", epoch, self.info.rank))
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct_sum = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        lr = self.optimizer.param_groups[0]["lr"]
        for step, (images, labels, indices) in enumerate(self.batches.indexed_epoch(epoch)):
            lr = self.optimizer.param_groups[0]["lr"]
            loss, correct = self.train_step(images, labels, epoch, step, indices)
            loss_sum += loss.double() * len(labels)
            correct_sum += correct
            seen += len(labels)
            last = step == self.steps_per_epoch - 1
            if (step + 1) % self.check_every == 0 or last:
                bad = not bool(torch.isfinite(loss_sum))
                if ddp.any_flag(bad, self.device, self.info):
                    raise Diverged(self._diverged(epoch, step, lr, loss_sum))
            if progress is not None:
                progress.update(1)
                if (step + 1) % 10 == 0 or last:
                    progress.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.3g}", refresh=False)
        total_loss, total_correct, total_seen = ddp.all_sum(
            [float(loss_sum), float(correct_sum), float(seen)], self.device, self.info
        )
        # every rank must hold rank 0's BatchNorm statistics before the model is evaluated or saved
        ddp.sync_buffers(self.model, self.info)
        return {"train_loss": total_loss / total_seen, "train_accuracy": total_correct / total_seen, "lr": lr}

    def eval_model(self) -> nn.Module:
        """The weights a run evaluates and saves: the EMA of the weights when the recipe has one."""
        return self.model if self.ema is None else self.ema.module(self.model)

    @torch.no_grad()
    def test_epoch(self, batch_size: int = 500) -> dict[str, float]:
        """Plain cross-entropy and accuracy on the test split (sharded over ranks, summed), with the
        recipe's EMA weights and its test-time augmentation unless that is for the final eval only."""
        from cifarb.eval.tta import with_tta

        self.model.eval()
        model = with_tta(self.eval_model(), self.tta if self.tta_each_epoch else "none")
        loss_sum, correct, n = 0.0, 0.0, 0.0
        for images, labels in eval_batches(self.test_images, self.test_labels, batch_size, self.info.rank, self.info.world):
            x = normalize(images, self.mean_t, self.std_t, self.channels_last)
            with self._autocast():
                logits = model(x)
            loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
            correct += float((logits.argmax(1) == labels).sum())
            n += len(labels)
        loss_sum, correct, n = ddp.all_sum([loss_sum, correct, n], self.device, self.info)
        return {"test_loss": loss_sum / n, "test_accuracy": correct / n}

    def params_finite(self) -> bool:
        return all(bool(torch.isfinite(t).all()) for t in self.model.state_dict().values() if t.is_floating_point())

    # --- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self, epoch: int, history: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
        m = self.p.model
        extra: dict[str, Any] = {}
        if self.ema is not None:
            # "model" is what the run evaluates (the average); the raw weights continue the training
            extra = {"train_model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                     "ema": self.ema.state_dict()}
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "model": {k: v.detach().cpu() for k, v in self.eval_model().state_dict().items()},
            **extra,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "history": list(history),
            "elapsed_s": elapsed,
            "arch": m.arch,
            "num_classes": m.num_classes,
            "arch_options": m.arch_options,
            "mean": list(m.mean),
            "std": list(m.std),
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        if state.get("format") != CHECKPOINT_FORMAT or not isinstance(state.get("model"), dict):
            raise CifarbError(f"{path} is not a cifarb training checkpoint; it cannot be resumed—start a new run")
        from cifarb.models.zoo import check_fit

        check_fit(self.model, state["model"], self.p.model.arch, path)
        if self.ema is not None and isinstance(state.get("train_model"), dict):
            self.model.load_state_dict(state["train_model"])
            self.ema.load(state["model"], state.get("ema") or {})
        else:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # the schedule itself is rebuilt from the recipe (a resume may extend --epochs); only its position is restored
        sched = dict(state["scheduler"])
        sched["lr_lambdas"] = [None] * len(self.scheduler.lr_lambdas)
        self.scheduler.load_state_dict(sched)
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state.get("rng"))


def _make_optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    """SGD/AdamW; BatchNorm weights and biases (1-d tensors) get their own LR scale and decay."""
    decay, other = [], []
    for param in model.parameters():
        if param.requires_grad:
            (other if param.ndim <= 1 else decay).append(param)
    # torch couples decay to the lr (step = lr * wd * p): dividing by the lr scale keeps the decay per step
    other_wd = (r.weight_decay if r.decay_norm_and_bias else 0.0) / r.norm_bias_lr_scale
    groups = [
        {"params": decay, "lr": r.lr, "weight_decay": r.weight_decay},
        {"params": other, "lr": r.lr * r.norm_bias_lr_scale, "weight_decay": other_wd},
    ]
    groups = [g for g in groups if g["params"]]
    if r.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=r.lr)
    return torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.nesterov)


def _rng_state() -> dict[str, Any]:
    """Every RNG state as tensors and plain containers: the checkpoint loads with weights_only=True."""
    kind, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    key = np.asarray(npst["key"].numpy() if isinstance(npst["key"], torch.Tensor) else npst["key"], dtype=np.uint32)
    np.random.set_state((npst["kind"], key, int(npst["pos"]), int(npst["has_gauss"]), float(npst["cached_gaussian"])))
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _diverged_message(rundir: RunDir, run_lr: float, epoch: int, step: int, lr: float, value: torch.Tensor) -> str:
    kind = "NaN" if bool(torch.isnan(value)) else "infinite"
    ckpt = rundir.checkpoint_path("last.pt")
    if epoch > 0 or ckpt.exists():
        kept = f"the last good checkpoint {ckpt} (after epoch {epoch}) is kept"
    else:
        kept = "no checkpoint was written (it diverged in the first epoch)"
    return (
        f"training diverged: the loss became {kind} in epoch {epoch + 1}, step {step + 1} (lr {lr:.3g}); "
        f"{kept}. Start a new run with a lower --lr (this run used {run_lr:g})"
    )


# --- the run ---------------------------------------------------------------------------------------------


def manifest_for(p: Plan, trainer: Trainer) -> dict[str, Any]:
    cfg, m, data = p.run.cfg, p.model, p.data.info
    inputs = {**data["train"]["files"], **data["test"]["files"]}
    config = {
        **cfg.to_dict(),
        "num_classes": m.num_classes,
        "mean": list(m.mean),
        "std": list(m.std),
        "arch_options": m.arch_options,
    }
    return {
        "kind": "train",
        "config": config,
        "hparams": p.recipe.to_dict(),
        "seed": p.run.seed,
        "normalization": {"mean": list(m.mean), "std": list(m.std)},
        "augment": p.pipeline.config(),
        "data": data,
        "data_verified": bool(data["train"]["verified"] and data["test"]["verified"]),
        "input_sha256": inputs,
        "runtime": _runtime(p.runtime, trainer),
        **provenance_info(),
        "resumes": [],
    }


def _runtime(rt: Runtime, trainer: Trainer) -> dict[str, Any]:
    """How this process executes the run (device, AMP, compile, ...): the manifest's `runtime`, and each resume's."""
    return {
        **trainer.path.describe(), "world_size": rt.dist.world, "workers": rt.workers,
        "steps_per_epoch": trainer.steps_per_epoch, "torch_threads": torch.get_num_threads(),
    }


def _progress(rt: Runtime, total: int, desc: str) -> Any:
    if not (rt.progress and rt.dist.is_main and sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _log(rt: Runtime, message: str) -> None:
    if rt.progress and rt.dist.is_main:
        print(message, file=sys.stderr, flush=True)


def run(cfg: TrainConfig, given: set[str] | None = None) -> TrainResult:
    """Train (or resume) one run and evaluate it; returns the run directory, the model and the epoch log."""
    info = ddp.init(ddp.device_for(cfg.device, ddp.launched_world()))
    try:
        return _run(cfg, given, info)
    finally:
        ddp.shutdown(info)


def _run(cfg: TrainConfig, given: set[str] | None, info: ddp.DistInfo) -> TrainResult:
    p = plan(cfg, given, info)
    # one writer per run directory: rank 0 holds an OS lock for the whole run (released by the OS on a kill),
    # taken before the trainer's set-up so a second writer is refused at once
    lock = p.run.rundir.lock()
    locked = lock.try_acquire() if info.is_main else True
    if ddp.any_flag(not locked, p.runtime.device, info):
        raise lock.busy_error() if info.is_main else CifarbError(f"rank 0 could not lock {p.run.rundir.path}")
    try:
        return _run_locked(p, info)
    finally:
        lock.release()


def _run_locked(p: Plan, info: ddp.DistInfo) -> TrainResult:
    trainer = Trainer(p)
    cfg, rt = p.run.cfg, p.runtime
    rundir = p.run.rundir
    # the folder may have changed while this run was being planned: the --out rules again, under the lock
    rundir.check_can_start(p.run.resume)
    history: list[dict[str, Any]] = []
    start_epoch, elapsed = 0, 0.0
    # every rank has validated and read the directory before rank 0 changes it
    ddp.barrier(info)
    if p.run.resume:
        state = rundir.load_checkpoint("last.pt") if rundir.checkpoint_path("last.pt").exists() else None
        if state is not None:
            trainer.load_state_dict(state, rundir.checkpoint_path("last.pt"))
            start_epoch, history, elapsed = int(state["epoch"]), list(state["history"]), float(state["elapsed_s"])
        if info.is_main:
            rundir.clean_stale_staging()
            _sync_metrics(rundir, history)
            rundir.write_manifest(_resumed_manifest(p.run, rt, trainer, start_epoch))
        _log(rt, f"resuming {rundir.path} after epoch {start_epoch}/{cfg.epochs}")
    elif info.is_main:
        # built under a temporary name and renamed: a kill never leaves a half-made run behind
        rundir.create_with_manifest(manifest_for(p, trainer))
    ddp.barrier(info)
    from cifarb.train.trackers import open_trackers  # imports a tracker library only when --log names it

    tracker = open_trackers(cfg.log.split(",") if cfg.log and info.is_main else (), rundir.path, config=cfg.to_dict())

    epochs = int(cfg.epochs or 0)
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        bar = _progress(rt, trainer.steps_per_epoch, f"epoch {epoch + 1}/{epochs}")
        try:
            stats = trainer.train_epoch(epoch, bar)
        finally:
            if bar is not None:
                bar.close()
        stats.update(trainer.test_epoch())
        if not (math.isfinite(stats["test_loss"]) and trainer.params_finite()):
            raise Diverged(trainer._diverged(epoch, trainer.steps_per_epoch - 1, stats["lr"], torch.tensor(math.nan)))
        elapsed += time.perf_counter() - t0
        record = {"event": "epoch", "epoch": epoch + 1, **{k: stats[k] for k in EPOCH_KEYS[1:-1]}, "elapsed_s": round(elapsed, 3)}
        history.append(record)
        if info.is_main:
            # checkpoint first: a metrics line always has its checkpoint (the history travels inside it)
            rundir.save_checkpoint(trainer.state_dict(epoch + 1, history, elapsed), "last.pt")
            rundir.append_metrics(record)
            tracker.log_epoch(record)
        _log(
            rt,
            f"epoch {epoch + 1}/{epochs}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}, "
            f"test loss {record['test_loss']:.4f} acc {record['test_accuracy']:.4f}, lr {record['lr']:.4g}, "
            f"{record['elapsed_s']:.1f} s",
        )
        ddp.barrier(info)

    result = TrainResult(rundir.path, trainer.eval_model(), history)
    # a resumed run that had finished only needs the evaluation, if that is what was missing
    done_before = p.run.resume and start_epoch >= epochs and rundir.eval_path(f"{cfg.dataset}-b").exists()
    if done_before:
        _log(rt, f"{rundir.path} is complete ({epochs} epochs, evaluated); nothing to do")
    elif cfg.eval and info.is_main:
        result.eval_result = final_eval(p, trainer)
        tracker.log_result(result.eval_result)
    tracker.close()
    ddp.barrier(info)
    return result


def _resumed_manifest(run: RunBook, rt: Runtime, trainer: Trainer, start_epoch: int) -> dict[str, Any]:
    """The saved manifest plus one `resumes` entry: from which epoch, and what the resume changed."""
    manifest = dict(run.saved_manifest or {})
    config = dict(manifest.get("config") or {})
    # amp/compile may change on resume (they change how, not what, the run computes): say so
    changed = {k: {"from": config.get(k), "to": getattr(run.cfg, k)} for k in sorted(RESUME_CHANGEABLE)
               if k in config and config.get(k) != getattr(run.cfg, k)}
    entry: dict[str, Any] = {"from_epoch": start_epoch, "torch_threads": torch.get_num_threads(),
                             "runtime": _runtime(rt, trainer), "changed": changed}
    if config.get("epochs") != run.cfg.epochs:
        entry["epochs"] = {"from": config.get("epochs"), "to": run.cfg.epochs}
        config["epochs"] = run.cfg.epochs
        manifest["config"] = config
        if isinstance(manifest.get("hparams"), dict):
            manifest["hparams"] = {**manifest["hparams"], "epochs": run.cfg.epochs}
    if getattr(run.cfg, "threads", None) is not None:
        entry["threads"] = run.cfg.threads
    entry.update({k: v for k, v in provenance_info().items() if k != "versions"})
    manifest.setdefault("resumes", []).append(entry)
    return manifest


def _sync_metrics(rundir: RunDir, history: list[dict[str, Any]]) -> None:
    """Make metrics.jsonl's epoch lines match the checkpoint's history (a crash may fall between the two)."""
    last = history[-1]["epoch"] if history else 0
    rundir.truncate_epochs(last)
    have = {r.get("epoch") for r in rundir.read_metrics("epoch")}
    for record in history:
        if record["epoch"] not in have:
            rundir.append_metrics(record)


def eval_settings(p: Plan) -> EvalSettings:
    """The settings of a run's final evaluation: its CIs are seeded by derive_seed(run seed, "eval-ci"),
    so the bootstrap never reuses a draw of the training's streams."""
    from cifarb.eval.settings import EvalSettings

    return EvalSettings(
        bootstrap=p.run.cfg.eval_bootstrap, seed=derive_seed(p.run.seed, "eval-ci"), min_cell_size=1,
        min_cell_size_worst=10, subgroup_names=None, tta=p.recipe.tta, batch_size=max(256, p.recipe.batch_size),
        permutations=p.run.cfg.permutations, device=str(p.runtime.device), progress=p.runtime.progress,
    )


def final_eval(p: Plan, trainer: Trainer) -> dict[str, Any]:
    """Evaluate the final model on CIFAR-B; writes eval/, predictions/ and an "eval" line in metrics.jsonl."""
    from cifarb.eval import evaluate
    from cifarb.models.zoo import LoadedModel, sha256_file

    cfg, m, rundir = p.run.cfg, p.model, p.run.rundir
    dataset = f"{cfg.dataset}-b"
    ckpt = rundir.checkpoint_path("last.pt")
    trainer.model.eval()
    loaded = LoadedModel(
        module=trainer.eval_model(), mean=m.mean, std=m.std, arch=m.arch, spec=str(rundir.path),
        sha256=sha256_file(ckpt) if ckpt.exists() else None, num_classes=m.num_classes, source=str(ckpt),
    )
    # with rundir, evaluate writes eval/<dataset>.json, predictions/<dataset>.parquet and the "eval" line
    result = evaluate(loaded, dataset, settings=eval_settings(p), root=cfg.root, trust_local=cfg.trust_local,
                      rundir=rundir)
    from cifarb.eval.table import summary_line

    _log(p.runtime, summary_line(result))
    return result
