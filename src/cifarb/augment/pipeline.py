"""AugmentPipeline: a parsed `a+b+c` spec split into sample/batch/mix stages, with keyed seeding and the loss hook."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cifarb.augment import registry
from cifarb.augment.base import (
    Augmentation,
    BatchAugmentation,
    MixAugmentation,
    SampleAugmentation,
    chain_keys,
    keyed_generator,
)
from cifarb.errors import CifarbError
from cifarb.seeds import PURPOSES

__all__ = ["AugmentPipeline", "AugmentedDataset", "build_pipeline", "soft_cross_entropy"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# Stream tags keep per-sample and per-batch randomness independent under the same seed.
_SAMPLE_TAG, _BATCH_TAG = PURPOSES["augment-sample"], PURPOSES["augment-batch"]
_STAGE_CLASS = {"sample": SampleAugmentation, "batch": BatchAugmentation, "mix": MixAugmentation}


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross entropy against soft targets (N, C); smoothing as in F.cross_entropy: (1-e) t + e / C."""
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[1]
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


class AugmentPipeline:
    """The augmentations of one training run; see docs/augmentations.md for the calling convention."""

    def __init__(
        self,
        spec: str,
        pieces: list[Augmentation],
        *,
        num_classes: int,
        seed: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        label_smoothing: float,
    ) -> None:
        self.spec = spec
        self.pieces = pieces
        self.num_classes = num_classes
        self.seed = int(seed)
        self.mean, self.std = tuple(mean), tuple(std)
        self.label_smoothing = float(label_smoothing)
        # sorted() is stable: equal priorities keep the order of the spec.
        by_stage = {
            s: sorted((p for p in pieces if p.stage == s), key=lambda p: p.priority) for s in _STAGE_CLASS
        }
        self.sample_pieces: list[SampleAugmentation] = by_stage["sample"]  # type: ignore[assignment]
        self.batch_pieces: list[BatchAugmentation] = by_stage["batch"]  # type: ignore[assignment]
        self.mix_pieces: list[MixAugmentation] = by_stage["mix"]  # type: ignore[assignment]
        multi = [p for p in self.sample_pieces if p.views > 1]
        if len(multi) > 1:
            raise CifarbError(f"{spec!r}: only one multi-view piece allowed, got {[p.name for p in multi]}")
        if multi and self.sample_pieces[-1] is not multi[0]:
            raise CifarbError(f"{spec!r}: {multi[0].name} (multi-view) must be the last per-sample piece")
        if multi and self.mix_pieces:
            raise CifarbError(
                f"{spec!r}: {multi[0].name} with a consistency loss does not compose with "
                f"{', '.join(p.name for p in self.mix_pieces)}; switch it off (e.g. augmix_jsd=False)"
            )
        self._multi_view: SampleAugmentation | None = multi[0] if multi else None
        self._epoch_state: tuple[int, int] = (-1, 0)  # (epoch, chain state of (seed, tag, epoch))
        self.views = multi[0].views if multi else 1

    # -- per-sample stage (DataLoader workers) ------------------------------------------------------
    @property
    def has_sample_stage(self) -> bool:
        return bool(self.sample_pieces)

    def sample(self, image: torch.Tensor, *, epoch: int, index: int) -> torch.Tensor:
        """Apply the per-sample pieces to one uint8 CHW image, seeded by (seed, epoch, index).

        Returns uint8 (C, H, W), or (views, C, H, W). torch's global RNG and thread count are restored
        afterwards, so calling this in the main process does not disturb anything else.
        """
        if not self.sample_pieces:
            return image
        # On a 32x32 image, intra-op threads cost far more than they save (measured ~13x slower with two
        # threads on a busy 2-core machine); DataLoader workers already run single-threaded.
        threads = torch.get_num_threads()
        if threads > 1:
            torch.set_num_threads(1)
        # Seed only the default CPU generator (what CPU torchvision ops draw from): torch.manual_seed
        # also seeds every accelerator backend and costs ~290 us, twice an AutoAugment call.
        gen = torch.default_generator
        state = gen.get_state()
        try:
            cached_epoch, prefix = self._epoch_state
            if cached_epoch != epoch:  # absorb (seed, tag, epoch) once per epoch, not once per image
                prefix = chain_keys(self.seed, _SAMPLE_TAG, epoch)
                self._epoch_state = (epoch, prefix)
            gen.manual_seed(chain_keys(index, state=prefix) >> 1)  # == derive_seed(seed, tag, epoch, index)
            for piece in self.sample_pieces:
                image = piece(image)
        finally:
            gen.set_state(state)
            if threads > 1:
                torch.set_num_threads(threads)
        return image

    def dataset(
        self, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray
    ) -> AugmentedDataset:
        """A map-style Dataset applying `sample` per item; images uint8 (N, C, H, W) tensor or (N, H, W, C) array."""
        return AugmentedDataset(self, images, labels)

    # -- batch and mix stages (main process, any device) --------------------------------------------
    def generator(self, *, epoch: int, step: int, rank: int = 0) -> torch.Generator:
        """The CPU generator for one training step: keyed, so resuming needs no saved RNG state."""
        return keyed_generator(self.seed, _BATCH_TAG, epoch, step, rank)

    @property
    def uses_indices(self) -> bool:
        """Whether a batch piece wants each image's training-set position (`indices=` of `prepare`)."""
        return any(p.uses_indices for p in self.batch_pieces)

    def check_dataset(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Once before training: tell the index-using pieces which training set the indices point into."""
        for piece in self.batch_pieces:
            if piece.uses_indices:
                piece.check_dataset(images, labels)

    def batch(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        indices: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the uint8 batch pieces (crop/flip, cutout, FlowAug, ...) in priority order.

        `indices` (int64 (N,), each image's position in the training set) reaches only the pieces that
        declare `uses_indices`; the others keep the three-argument call.
        """
        for piece in self.batch_pieces:
            if piece.uses_indices:
                images, labels = piece(images, labels, generator, indices=indices)  # type: ignore[call-arg]
            else:
                images, labels = piece(images, labels, generator)
        return images, labels

    def mix(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a float batch: returns (x, soft targets (N, C)); without mix pieces, (x, labels) unchanged.

        Several mix pieces (e.g. mixup+cutmix) take turns: one is chosen uniformly per batch, as timm does.
        """
        if not self.mix_pieces:
            return x, labels
        targets = F.one_hot(labels, self.num_classes).to(x.dtype)
        piece = self.mix_pieces[0]
        if len(self.mix_pieces) > 1:
            piece = self.mix_pieces[int(torch.randint(len(self.mix_pieces), (1,), generator=generator))]
        return piece(x, targets, generator)

    def prepare(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        epoch: int,
        step: int,
        rank: int = 0,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = True,
        indices: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 batch from the loader -> (model input, targets for `loss`).

        images: uint8 (N, C, H, W), or (N, V, C, H, W) when `views > 1`; labels int64 (N,); indices: the
        images' positions in the training set (int64 (N,), CPU), needed by pieces with `uses_indices`
        (FlowAug's offline pool), ignored by the others. Returns x float
        (V*N, C, H, W), view-major (rows [:N] are the clean/primary view), normalised with mean/std (default:
        the pipeline's), channels_last; targets int64 (N,) or float (N, num_classes) when a mix piece ran.
        """
        if images.dtype != torch.uint8:
            raise TypeError(f"prepare expects a uint8 batch, got {images.dtype}")
        expected_dim = 4 if self.views == 1 else 5
        if images.dim() != expected_dim or (self.views > 1 and images.shape[1] != self.views):
            raise ValueError(
                f"pipeline {self.spec!r} expects {expected_dim}-d batches, got {tuple(images.shape)}"
            )
        g = generator if generator is not None else self.generator(epoch=epoch, step=step, rank=rank)
        images, labels = self.batch(images, labels, g, indices)
        if self.views > 1:
            images = images.transpose(0, 1).flatten(0, 1)
        if channels_last:
            # Reorder while still uint8 (a quarter of the bytes); the float ops below keep the layout.
            images = images.contiguous(memory_format=torch.channels_last)
        c = images.shape[1]
        m = torch.tensor(self.mean if mean is None else mean, dtype=torch.float64).view(1, c, 1, 1)
        s = torch.tensor(self.std if std is None else std, dtype=torch.float64).view(1, c, 1, 1)
        # (x / 255 - m) / s as one multiply-add
        scale = (1.0 / (255.0 * s)).to(dtype=dtype, device=images.device)
        shift = (-m / s).to(dtype=dtype, device=images.device)
        x = torch.addcmul(shift, images.to(dtype), scale)
        x, targets = self.mix(x, labels, g)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, targets

    # -- loss hook -------------------------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Training loss for `prepare`'s output: CE on hard labels or soft targets, with label smoothing,
        computed on the primary view, plus the multi-view piece's consistency loss (AugMix JSD)."""
        n = targets.shape[0]
        if logits.shape[0] != n * self.views:
            raise ValueError(
                f"expected {n * self.views} rows of logits ({self.views} views x {n}), got {logits.shape[0]}"
            )
        logits = logits.float()
        primary = logits[:n]
        if targets.dtype.is_floating_point:
            out = soft_cross_entropy(primary, targets.float(), self.label_smoothing)
        else:
            out = F.cross_entropy(primary, targets, label_smoothing=self.label_smoothing)
        if self._multi_view is not None:
            out = out + self._multi_view.consistency_loss(list(logits.view(self.views, n, -1).unbind(0)))
        return out

    def config(self) -> dict[str, Any]:
        """JSON-able description for the run manifest."""
        return {
            "spec": self.spec,
            "seed": self.seed,
            "mean": list(self.mean),
            "std": list(self.std),
            "label_smoothing": self.label_smoothing,
            "views": self.views,
            "pieces": [{"name": p.name, "stage": p.stage, **p.config()} for p in self.pieces],
        }

    def __repr__(self) -> str:
        return f"AugmentPipeline({self.spec!r}, views={self.views}, seed={self.seed})"


class AugmentedDataset(torch.utils.data.Dataset):
    """uint8 images + labels with the pipeline's per-sample stage; keys are an index or (epoch, index).

    Call `set_epoch(e)` before creating each epoch's DataLoader iterator (workers copy the dataset when
    they start, so with persistent workers pass (epoch, index) keys from the sampler instead).
    """

    def __init__(
        self, pipeline: AugmentPipeline, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray
    ) -> None:
        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.shape[-1] not in (1, 3):
                raise ValueError(f"numpy images must be (N, H, W, C), got {images.shape}")
            images = torch.from_numpy(images).permute(0, 3, 1, 2)
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 (N, C, H, W) tensor, got {images.dtype} {tuple(images.shape)}"
            )
        self.images = images.contiguous()
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.pipeline = pipeline
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        index = int(index)
        return self.pipeline.sample(self.images[index], epoch=epoch, index=index), self.labels[index]


def build_pipeline(spec: str, *, num_classes: int, seed: int = 0, **opts: Any) -> AugmentPipeline:
    """Parse `spec` ("standard+autoaugment", "none", ...) into an AugmentPipeline.

    Options: `mean`/`std` (normalisation used by `prepare` and cutout's fill; default CIFAR-10's),
    `label_smoothing` (default 0), and per-piece options listed in docs/augmentations.md.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise CifarbError(f"empty augmentation spec; choose from: {', '.join(registry.available())}")
    if num_classes < 2:
        raise CifarbError(f"num_classes must be >= 2, got {num_classes}")
    names = [n.strip().lower() for n in spec.split("+")]
    if any(not n for n in names):
        raise CifarbError(f"malformed augmentation spec {spec!r}: empty piece between '+' signs")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CifarbError(f"augmentation spec {spec!r} repeats {', '.join(dupes)}")
    factories = [registry.get_factory(n) for n in names]
    registry.check_options(opts)
    opts = dict(opts)
    opts.setdefault("mean", CIFAR10_MEAN)
    opts.setdefault("std", CIFAR10_STD)
    opts.setdefault("label_smoothing", 0.0)
    if len(opts["mean"]) != len(opts["std"]):
        raise CifarbError(f"mean {opts['mean']} and std {opts['std']} differ in length")
    if not 0.0 <= float(opts["label_smoothing"]) < 1.0:
        raise CifarbError(f"label_smoothing must be in [0, 1), got {opts['label_smoothing']}")
    pieces = []
    for name, factory in zip(names, factories):
        piece = factory(num_classes, **opts)
        cls = _STAGE_CLASS.get(getattr(piece, "stage", ""))
        if cls is None or not isinstance(piece, cls):
            raise TypeError(
                f"augmentation {name!r} must subclass SampleAugmentation, BatchAugmentation or MixAugmentation"
            )
        piece.name = name
        pieces.append(piece)
    return AugmentPipeline(
        "+".join(names),
        pieces,
        num_classes=num_classes,
        seed=seed,
        mean=tuple(opts["mean"]),
        std=tuple(opts["std"]),
        label_smoothing=float(opts["label_smoothing"]),
    )
