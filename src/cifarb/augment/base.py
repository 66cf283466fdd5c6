"""Stage base classes for augmentations and the keyed seeding every random operation uses."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from cifarb.seeds import chain_keys, mix_keys

__all__ = [
    "Augmentation",
    "SampleAugmentation",
    "BatchAugmentation",
    "MixAugmentation",
    "chain_keys",
    "derive_seed",
    "keyed_generator",
    "STAGES",
]

STAGES = ("sample", "batch", "mix")


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys, e.g. (seed, stage tag, epoch, index).

    Keys are chained through splitmix64 so nearby keys (index 7 vs 8) give unrelated streams; the result
    is the same on every platform and in every process, which is what makes worker seeding reproducible.
    The chain and the purpose tags live in `cifarb.seeds` (`derive_seed(run_seed, purpose, *keys)`).
    """
    return mix_keys(*keys)


def keyed_generator(*keys: int) -> torch.Generator:
    """A CPU torch.Generator seeded by `derive_seed(*keys)`."""
    g = torch.Generator()
    g.manual_seed(derive_seed(*keys))
    return g


class Augmentation:
    """One pluggable piece of a pipeline; subclass one of the three stage classes below."""

    stage: ClassVar[str] = ""
    name: str = ""
    # Order inside the stage (lower runs first), so "cutout+standard" still crops before cutting out.
    priority: int = 50

    def config(self) -> dict[str, Any]:
        """JSON-able parameters of this piece, recorded in the run manifest."""
        return {}


class SampleAugmentation(Augmentation):
    """Per-image op: uint8 CHW tensor in, uint8 CHW out (or (views, C, H, W) when `views > 1`).

    Runs in DataLoader workers. It may draw from torch's global RNG: the pipeline seeds it per
    (seed, epoch, index) around every call, so results do not depend on worker count or order.
    """

    stage: ClassVar[str] = "sample"
    views: int = 1

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def consistency_loss(self, logits_per_view: list[torch.Tensor]) -> torch.Tensor:
        """Extra loss over the views' logits; only pieces with `views > 1` need it."""
        raise NotImplementedError


class BatchAugmentation(Augmentation):
    """Batched op on uint8 images (N, C, H, W) or (N, V, C, H, W) plus int64 labels (N,).

    Randomness comes only from `generator` (a CPU generator); outputs stay on the input's device.
    With views, the same random parameters apply to every view of an image.

    A piece that needs to know which training images it got sets `uses_indices = True`: the pipeline
    then also passes `indices=` (int64 CPU (N,), each image's position in the training set, or None when
    the caller has none). Other pieces never see indices.
    """

    stage: ClassVar[str] = "batch"
    uses_indices: ClassVar[bool] = False

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def check_dataset(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Called once before training, for pieces with `uses_indices`, with the training set that the
        batches' indices point into (uint8 (N, C, H, W), int64 (N,)); raise CifarbError if it is not the
        set the piece was prepared for."""


class MixAugmentation(Augmentation):
    """Batched op on float normalised images (N, C, H, W) and soft targets (N, num_classes)."""

    stage: ClassVar[str] = "mix"

    def __call__(
        self, x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError
