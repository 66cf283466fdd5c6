"""Data augmentations as pluggable, composable pieces: `build_pipeline("standard+mixup", num_classes=10)`."""

from __future__ import annotations

from cifarb.augment import batch as _batch
from cifarb.augment import mix as _mix
from cifarb.augment import policies as _policies
from cifarb.augment.base import (
    Augmentation,
    BatchAugmentation,
    MixAugmentation,
    SampleAugmentation,
    derive_seed,
    keyed_generator,
)
from cifarb.augment.pipeline import AugmentedDataset, AugmentPipeline, build_pipeline, soft_cross_entropy
from cifarb.augment.policies import jsd_loss
from cifarb.augment.registry import LAZY, available, register_augmentation

__all__ = [
    "Augmentation",
    "AugmentedDataset",
    "AugmentPipeline",
    "BatchAugmentation",
    "LAZY",
    "MixAugmentation",
    "SampleAugmentation",
    "available",
    "build_pipeline",
    "derive_seed",
    "jsd_loss",
    "keyed_generator",
    "register_augmentation",
    "soft_cross_entropy",
]

register_augmentation("none", _batch.make_identity, options=())
register_augmentation("standard", _batch.make_crop_flip, options=("crop_padding", "crop_pad_mode", "flip"))
register_augmentation("cutout", _batch.make_cutout, options=("cutout_size", "cutout_fill"))
register_augmentation("autoaugment", _policies.make_autoaugment, options=("autoaugment_policy",))
register_augmentation(
    "randaugment", _policies.make_randaugment, options=("randaugment_num_ops", "randaugment_magnitude")
)
register_augmentation("trivialaugment", _policies.make_trivialaugment, options=())
register_augmentation(
    "augmix",
    _policies.make_augmix,
    options=(
        "augmix_jsd",
        "augmix_jsd_weight",
        "augmix_severity",
        "augmix_width",
        "augmix_depth",
        "augmix_alpha",
        "augmix_all_ops",
    ),
)
register_augmentation("mixup", _mix.make_mixup, options=("mixup_alpha",))
register_augmentation("cutmix", _mix.make_cutmix, options=("cutmix_alpha",))
