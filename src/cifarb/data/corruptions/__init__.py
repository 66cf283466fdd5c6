"""CIFAR-C-style corruptions (Hendrycks & Dietterich, ICLR 2019) for any set of 32x32 RGB images.

`corrupt(images, name, severity, seed, indices=None)` applies one corruption at one severity to a uint8
(N, 32, 32, 3) batch; `make_c(...)` writes a whole set in the official CIFAR-10-C layout. Every image draws
its randomness from its own generator, keyed by (seed, corruption, severity, official index), so results
do not depend on batch size, on batching order or on which other images are in the set. No torch here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cifarb.data.corruptions import _blur, _digital, _noise, _weather
from cifarb.data.corruptions._params import SEVERITY_PARAMS
from cifarb.errors import CifarbError

# Bump when the same (seed, corruption, severity, image) would give different pixels.
# 2: frost from the reference's photographs, zoom_blur with unrounded factors, spatter's uint8 wrap-around,
#    ImageMagick Q16 quantisation for motion blur and snow (every other corruption: same pixels as 1).
GENERATOR_VERSION = "2"

STANDARD: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
CORRUPTIONS: tuple[str, ...] = STANDARD + EXTRA
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

CorruptionFn = Callable[[np.ndarray, Any, Sequence[np.random.Generator], int], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    name: str
    fn: CorruptionFn
    family: str  # noise | blur | weather | digital
    note: str  # how this implementation relates to the reference, for the docs and the manifest
    random: bool  # draws random numbers (the others ignore the seed and get no generators)


# corruptions that draw random numbers
_RANDOM = {
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
    "snow", "frost", "fog", "elastic_transform", "spatter",
}


_NOTES = {
    "motion_blur": "ImageMagick 6 Q16 MotionBlurImage re-implemented in numpy: one-sided Gaussian line kernel of "
    "2*ceil(radius)+1 taps at a random angle in [-45, 45] degrees, edge pixels replicated, ImageMagick's "
    "16-bit rounding then 8-bit truncation",
    "snow": "snow layer blurred with the same numpy motion blur and quantisation (angle in [-135, -45]) "
    "instead of ImageMagick",
    "frost": "the reference's frost photographs (from the installed imagecorruptions package, sha256-checked), "
    "the reference's crop procedure for 32x32 images",
    "glass_blur": "pixel scrambling reproduces the reference's published behaviour (offsets in {-1, 0}, copy not swap)",
    "spatter": "as the reference, including the uint8 wrap-around of drop values above 1",
    "zoom_blur": "as the reference, with its unrounded np.arange factors; all zooms applied as one linear operator",
}
FROST_SUBSTITUTE_NOTE = (
    "PROCEDURAL SUBSTITUTE (the reference's frost photographs were not found): random 32x32 crops of five "
    "seeded synthetic frost plates (tinted base, plasma mottling, dendritic crystals, grain) whose statistics "
    "match the photographs' measured range; easier than the reference"
)

_FAMILIES = {
    "noise": (_noise, ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")),
    "blur": (_blur, ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur")),
    "weather": (_weather, ("snow", "frost", "fog", "brightness", "spatter", "saturate")),
    "digital": (_digital, ("contrast", "elastic_transform", "pixelate", "jpeg_compression")),
}

REGISTRY: dict[str, Corruption] = {}
for _family, (_module, _names) in _FAMILIES.items():
    for _name in _names:
        REGISTRY[_name] = Corruption(
            _name, getattr(_module, _name), _family,
            _NOTES.get(_name, "as the reference, with its CIFAR parameters"), _name in _RANDOM,
        )
assert set(REGISTRY) == set(CORRUPTIONS) == set(SEVERITY_PARAMS)


def check_name(name: str) -> Corruption:
    """The registered corruption `name`, or a CifarbError listing the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        from cifarb.data.corruption_names import unknown_corruptions

        raise CifarbError(unknown_corruptions([name], CORRUPTIONS) or f"unknown corruption {name!r}") from None


def check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) or not 1 <= severity <= 5:
        raise CifarbError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise CifarbError(
            f"corruptions need uint8 images of shape (N, 32, 32, 3) (NHWC, RGB), got {images.dtype} "
            f"{images.shape}; the severity parameters are specific to 32x32 CIFAR images"
        )
    return images


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CifarbError(f"the seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def image_rngs(seed: int, name: str, severity: int, indices: Sequence[int] | np.ndarray) -> list[np.random.Generator]:
    """One generator per image, derived from (seed, corruption, severity, official index) only."""
    check_seed(seed)
    key = zlib.crc32(name.encode())
    return [
        np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(key, int(severity), int(i)))))
        for i in indices
    ]


def _indices(images: np.ndarray, indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
    if indices is None:
        return np.arange(images.shape[0])
    idx = np.asarray(indices)
    if idx.shape != (images.shape[0],) or (idx.size and (idx.min() < 0 or not np.issubdtype(idx.dtype, np.integer))):
        raise CifarbError(f"indices must be {images.shape[0]} non-negative integers, one per image")
    return idx


def apply(
    images: np.ndarray,
    name: str,
    params: Any,
    seed: int = 0,
    indices: Sequence[int] | np.ndarray | None = None,
    *,
    severity_key: int = 0,
) -> np.ndarray:
    """Apply corruption `name` with explicit parameters (same form as one SEVERITY_PARAMS entry).

    Used for severity tables of other image sizes and for checks such as "zero strength is the identity".
    `severity_key` only enters the random seeds.
    """
    corruption = check_name(name)
    images = check_images(images)
    idx = _indices(images, indices)
    check_seed(seed)
    # creating a generator costs ~15 us per image: only the corruptions that draw random numbers get them
    rngs = image_rngs(seed, name, severity_key, idx) if corruption.random else []
    if images.shape[0] == 0:
        return images.copy()
    out = corruption.fn(images, params, rngs, int(seed))
    assert out.dtype == np.uint8 and out.shape == images.shape, (name, out.dtype, out.shape)
    return out


def corrupt(
    images: np.ndarray, name: str, severity: int, seed: int = 0, indices: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Corrupt uint8 (N, 32, 32, 3) `images` with `name` at `severity` (1-5), deterministically.

    `indices` are the images' official indices (default 0..N-1); they key each image's random draws,
    so a prefix or subset of a set gets exactly the pixels it gets inside the full set.
    """
    severity = check_severity(severity)
    return apply(images, name, SEVERITY_PARAMS[check_name(name).name][severity - 1], seed, indices, severity_key=severity)


def parameters_table() -> dict[str, dict[str, Any]]:
    """JSON-ready {corruption: {severity: params}} for manifests and docs."""
    return {
        name: {str(s): (list(v) if isinstance(v, tuple | list) else v) for s, v in zip(SEVERITIES, SEVERITY_PARAMS[name])}
        for name in CORRUPTIONS
    }


def __getattr__(name: str) -> Any:
    # make_c pulls in the writer (and the readers) only when asked for
    if name in ("make_c", "MARKER_NAME", "folder_name", "frost_substitute_reason"):
        from cifarb.data.corruptions import _makec

        return getattr(_makec, name)
    raise AttributeError(name)


__all__ = [
    "CORRUPTIONS", "EXTRA", "GENERATOR_VERSION", "MARKER_NAME", "REGISTRY", "SEVERITIES", "SEVERITY_PARAMS",
    "STANDARD", "apply", "corrupt", "folder_name", "frost_substitute_reason", "make_c", "parameters_table",
]
