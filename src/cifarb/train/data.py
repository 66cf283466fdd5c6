"""Tensor-resident training data: uint8 NCHW images in memory, shuffled and sharded per epoch by seed.

Batches are index lists drawn from a permutation keyed by (seed, epoch), so a resumed run sees the same
batches, and under DDP every rank takes its own slice of the same global batch. Without a per-sample
("sample" stage) augmentation, batches are gathered straight from the (device-resident) tensor; with
one, a DataLoader runs the pipeline's dataset in worker processes. Either way each batch can carry its
images' dataset positions (`indexed_epoch`), for augmentations that look images up (FlowAug's pool).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from cifarb.errors import UsageError
from cifarb.seeds import PURPOSES
from cifarb.train.device import DevicePath

# stage tag mixed into the shuffling seed, so it never coincides with an augmentation stream
_SHUFFLE_TAG = PURPOSES["shuffle"]


def to_nchw(images_nhwc: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) numpy -> contiguous uint8 (N, C, H, W) tensor."""
    if images_nhwc.dtype != np.uint8 or images_nhwc.ndim != 4:
        raise ValueError(f"expected uint8 NHWC images, got {images_nhwc.dtype} {images_nhwc.shape}")
    return torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).contiguous()


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the n training images in `epoch` (0-based), the same on every rank and every resume."""
    from cifarb.augment.base import keyed_generator

    return torch.randperm(n, generator=keyed_generator(seed, _SHUFFLE_TAG, epoch))


class _WithIndex(torch.utils.data.Dataset):
    """A map-style dataset's items plus the dataset index each came from, collated into the batch."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, label = self.dataset[key]
        return image, label, int(key[1] if isinstance(key, tuple) else key)


class TrainBatches:
    """The training batches of one rank: `for images, labels in batches.epoch(e)`.

    `batch_size` is the global batch; each of `world` ranks gets `batch_size // world` images of it.
    The last incomplete batch is dropped (BatchNorm needs full batches; the order changes every epoch).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        seed: int,
        pipeline: Any = None,
        workers: int = 0,
        device: DevicePath | torch.device | str = "cpu",
        rank: int = 0,
        world: int = 1,
    ) -> None:
        n = len(images)
        if batch_size > n:
            raise UsageError(
                f"--batch-size {batch_size} is larger than the {n} training images; use a smaller --batch-size"
            )
        if batch_size % world:
            raise UsageError(f"--batch-size {batch_size} must be divisible by the {world} DDP processes")
        self.n = n
        self.batch_size = batch_size
        self.local_batch = batch_size // world
        self.seed = seed
        self.rank = rank
        self.world = world
        # transfers (pinned, non-blocking on CUDA) go through the run's DevicePath
        self.path = device if isinstance(device, DevicePath) else DevicePath(torch.device(device))
        self.device = self.path.device
        self.workers = workers
        self.sample_dataset = None
        if pipeline is not None and getattr(pipeline, "has_sample_stage", False):
            # per-image policies run in DataLoader workers on CPU tensors
            self.sample_dataset = pipeline.dataset(images, labels)
            self.images, self.labels = images, labels
        else:
            # batched ops only: keep everything where the model is and gather by index
            self.images, self.labels = self.path.to_device(images), self.path.to_device(labels)
        if pipeline is not None and getattr(pipeline, "uses_indices", False):
            # once, not per batch: the pieces that look images up by index check this is their data
            pipeline.check_dataset(images, labels)

    def __len__(self) -> int:
        return self.n // self.batch_size

    def batch_indices(self, epoch: int) -> list[torch.Tensor]:
        """This rank's index tensors for every step of `epoch`."""
        perm = epoch_permutation(self.n, self.seed, epoch)
        lo, hi = self.rank * self.local_batch, (self.rank + 1) * self.local_batch
        return [perm[s * self.batch_size + lo : s * self.batch_size + hi] for s in range(len(self))]

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images, int64 labels) on the training device for each step of `epoch`."""
        for images, labels, _ in self.indexed_epoch(epoch):
            yield images, labels

    def indexed_epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Like `epoch`, plus each batch's dataset positions: int64 (local batch,), on the CPU."""
        batches = self.batch_indices(epoch)
        if self.sample_dataset is None:
            for idx in batches:
                on_device = idx.to(self.device)
                yield self.images[on_device], self.labels[on_device], idx
            return
        self.sample_dataset.set_epoch(epoch)
        # the index travels with each item through the workers, so it always names the image it came with
        loader = torch.utils.data.DataLoader(
            _WithIndex(self.sample_dataset),
            batch_sampler=[b.tolist() for b in batches],
            num_workers=self.workers,
            pin_memory=self.path.pinned,
        )
        for images, labels, indices in loader:
            yield self.path.to_device(images), self.path.to_device(labels), indices


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float normalised with per-channel `mean`/`std` (fractions of 255)."""
    x = images.float().div_(255.0).sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def eval_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, rank: int = 0, world: int = 1
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's contiguous shard of a test set, in batches (every image is seen by exactly one rank)."""
    n = len(images)
    lo, hi = n * rank // world, n * (rank + 1) // world
    for start in range(lo, hi, batch_size):
        stop = min(start + batch_size, hi)
        yield images[start:stop], labels[start:stop]
