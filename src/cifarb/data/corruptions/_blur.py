"""Blur corruptions: defocus, glass, motion, zoom and gaussian blur."""

from __future__ import annotations

import numpy as np

from cifarb.data.corruptions import _ops
from cifarb.data.corruptions._ops import Rngs, draw, to_uint8


def defocus_blur(images: np.ndarray, p: tuple[float, float], rngs: Rngs, seed: int) -> np.ndarray:
    radius, alias_blur = p
    kernel = _ops.disk_kernel(radius, alias_blur).astype(np.float64)
    return to_uint8(_ops.correlate_small(images / 255.0, kernel))


def glass_blur(images: np.ndarray, p: tuple[float, int, int], rngs: Rngs, seed: int) -> np.ndarray:
    """Blur, locally scramble pixels, blur again.

    The reference walks the pixels (h, w) for h, w = 31 .. 2 (descending) and "swaps" x[h, w] with
    x[h + dy, w + dx], dx, dy drawn by randint(-delta, delta): its upper bound is exclusive, so the
    offsets are in {-1, 0}, and its tuple swap of numpy views copies x[h + dy, w + dx] into x[h, w]
    without writing back. Because every source lies up or left of its target and the walk goes down-right
    to up-left, each pass reads only untouched pixels, so one pass is exactly one simultaneous gather,
    which we do for the whole batch at once. We keep this published behaviour since it is what
    CIFAR-10-C contains.
    """
    sigma, delta, iterations = p
    if delta != 1:  # the single-gather argument above needs offsets <= 0; every CIFAR severity has delta 1
        raise ValueError(f"glass_blur supports a pixel offset bound of 1, got {delta}")
    size = images.shape[1]
    x = (_ops.gaussian(images / 255.0, sigma) * 255).astype(np.uint8)
    lo, hi = delta + 1, size - delta  # walked positions: h, w in [delta + 1, size - delta]
    span = hi - lo + 1
    # per image: iterations x walked positions (in walk order, h then w descending) x (dx, dy)
    offsets = draw(rngs, lambda g: g.integers(-delta, delta, size=(iterations, span * span, 2)))
    order = np.arange(hi, lo - 1, -1)
    hh, ww = np.meshgrid(order, order, indexing="ij")  # walk order: h outer, w inner
    hh, ww = hh.ravel(), ww.ravel()
    nidx = np.arange(x.shape[0])[:, None]
    for it in range(iterations):
        dx, dy = offsets[:, it, :, 0], offsets[:, it, :, 1]
        src = x[nidx, hh[None, :] + dy, ww[None, :] + dx]
        x[nidx, hh[None, :], ww[None, :]] = src
    return to_uint8(_ops.gaussian(x / 255.0, sigma))


def motion_blur(images: np.ndarray, p: tuple[float, float], rngs: Rngs, seed: int) -> np.ndarray:
    radius, sigma = p
    angles = draw(rngs, lambda g: g.uniform(-45, 45))
    out = _ops.motion_blur(images.astype(np.float64), radius, sigma, angles)
    return _ops.imagemagick_q16_to_uint8(out)  # the reference's quantisation, not plain rounding


def zoom_blur(images: np.ndarray, factors: list[float], rngs: Rngs, seed: int) -> np.ndarray:
    # the mean of the image and its centre zooms; all zooms are linear, so they are one precomputed operator
    x = (images / 255.0).astype(np.float32)
    return to_uint8(_ops.zoom_sum(x, factors) / (len(factors) + 1))


def gaussian_blur(images: np.ndarray, c: float, rngs: Rngs, seed: int) -> np.ndarray:
    return to_uint8(_ops.gaussian(images / 255.0, c))
