"""Batched image operations shared by the corruptions: filters, zooms, plasma fractal, motion blur."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import cv2
import numpy as np
from scipy import ndimage

Rngs = Sequence[np.random.Generator]


def draw(rngs: Rngs, fn: Callable[[np.random.Generator], np.ndarray]) -> np.ndarray:
    """Stack one draw per image, each from that image's own generator (so batch size never matters)."""
    return np.stack([np.asarray(fn(g)) for g in rngs])


def gaussian(batch: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian semantics (spatial axes only) on a (N, H, W[, C]) batch."""
    if sigma <= 0:
        return batch.copy()
    sig = (0, sigma, sigma) + ((0,) if batch.ndim == 4 else ())
    return ndimage.gaussian_filter(batch, sigma=sig, mode=mode, truncate=truncate)


def correlate_small(batch: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.filter2D (correlation, BORDER_REFLECT_101) of every image and channel with a small kernel.

    The kernel is trimmed to its non-zero support first; each tap is then one shifted, weighted add over
    the whole batch, which beats a per-image loop for the few taps the CIFAR kernels have.
    """
    rows = np.flatnonzero(np.abs(kernel).sum(axis=1) > 0)
    cols = np.flatnonzero(np.abs(kernel).sum(axis=0) > 0)
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2  # cv2's default anchor is the kernel centre
    ry = max(cy - rows[0], rows[-1] - cy)
    rx = max(cx - cols[0], cols[-1] - cx)
    h, w = batch.shape[1:3]
    pad = [(0, 0), (ry, ry), (rx, rx)] + [(0, 0)] * (batch.ndim - 3)
    padded = np.pad(batch, pad, mode="reflect")  # numpy "reflect" is cv2's REFLECT_101
    out = np.zeros_like(batch)
    for i in rows:
        for j in cols:
            wgt = kernel[i, j]
            if wgt != 0:
                dy, dx = i - cy + ry, j - cx + rx
                out += wgt * padded[:, dy:dy + h, dx:dx + w]
    return out


@functools.lru_cache(maxsize=256)
def _zoom_matrix(size: int, factor: float) -> np.ndarray:
    """(size, size) matrix of clipped_zoom along one axis: crop the centre, zoom linearly, trim."""
    ch = int(np.ceil(size / factor))
    top = (size - ch) // 2
    # order-1 zoom is linear and separable, so zooming the identity gives its matrix exactly
    zoomed = ndimage.zoom(np.eye(ch), (factor, 1), order=1)
    trim = (zoomed.shape[0] - size) // 2
    matrix = np.zeros((size, size))
    matrix[:, top:top + ch] = zoomed[trim:trim + size]
    return matrix


def clipped_zoom(batch: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of each (N, H, H, C) image by `factor` (linear, as scipy.ndimage.zoom) and crop to H x H.

    Done as two small matrix products over the whole batch instead of one ndimage.zoom per factor.
    """
    m = _zoom_matrix(batch.shape[1], float(factor)).astype(batch.dtype)
    return np.einsum("ij,njkc,lk->nilc", m, batch, m, optimize=True)


def plasma_count(mapsize: int) -> int:
    """How many uniform draws `plasma_fractal` consumes per image."""
    total, step = 0, mapsize
    while step >= 2:
        total += 3 * (mapsize // step) ** 2
        step //= 2
    return total


def plasma_fractal(uniform: np.ndarray, mapsize: int = 32, wibbledecay: float = 3.0) -> np.ndarray:
    """Diamond-square height maps in [0, 1], one per row of `uniform` (N, plasma_count) in [-1, 1).

    As in the reference, the random offset at a level is wibble * U(-wibble, wibble), i.e. wibble^2
    times U(-1, 1), starting from wibble = 100 and dividing by `wibbledecay` per level.
    """
    if mapsize & (mapsize - 1):
        raise ValueError("mapsize must be a power of two")
    n = uniform.shape[0]
    maps = np.zeros((n, mapsize, mapsize), dtype=np.float64)
    pos = 0
    step = mapsize
    wibble = 100.0

    def wibbled(total: np.ndarray) -> np.ndarray:
        nonlocal pos
        k = total.shape[1] * total.shape[2]
        offsets = uniform[:, pos:pos + k].reshape(total.shape)
        pos += k
        return total / 4 + wibble * wibble * offsets

    while step >= 2:
        half = step // 2
        # squares: centre of each square = mean of its four corners + wibble
        corners = maps[:, 0::step, 0::step]
        acc = corners + np.roll(corners, -1, axis=1)
        acc = acc + np.roll(acc, -1, axis=2)
        maps[:, half::step, half::step] = wibbled(acc)
        # diamonds: edge midpoints from the two adjacent corners and the two adjacent centres
        centres = maps[:, half::step, half::step]
        corners = maps[:, 0::step, 0::step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0::step, half::step] = wibbled(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half::step, 0::step] = wibbled(top)
        step //= 2
        wibble /= wibbledecay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


def motion_kernel(radius: float, sigma: float, angle_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The taps of ImageMagick's MotionBlurImage, written from its documented behaviour.

    A one-sided Gaussian of 2*ceil(radius)+1 taps, weights exp(-i^2 / (2 sigma^2)) normalised to sum 1,
    placed at integer offsets (round(i cos a), round(i sin a)) along the angle a (x right, y down).
    Returns (weights, dx, dy).
    """
    width = int(2 * np.ceil(radius) + 1)
    i = np.arange(width, dtype=np.float64)
    weights = np.exp(-(i * i) / (2.0 * sigma * sigma))
    weights /= weights.sum()
    a = np.deg2rad(angle_deg)
    dx = np.ceil(i * np.cos(a) - 0.5).astype(np.int64)
    dy = np.ceil(i * np.sin(a) - 0.5).astype(np.int64)
    return weights, dx, dy


def motion_blur(batch: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """Blur each (H, W[, C]) image of the batch along its own angle (degrees); edges are replicated."""
    n, h, w = batch.shape[:3]
    rows = np.arange(h)
    cols = np.arange(w)
    nidx = np.arange(n)[:, None, None]
    out = np.zeros(batch.shape, dtype=np.float64)
    taps = [motion_kernel(radius, sigma, a) for a in np.asarray(angles, dtype=np.float64)]
    weights = taps[0][0]  # the weights depend on radius and sigma only
    dxs = np.stack([t[1] for t in taps])  # (N, taps)
    dys = np.stack([t[2] for t in taps])
    for t in range(weights.size):
        yy = np.clip(rows[None, :] + dys[:, t:t + 1], 0, h - 1)[:, :, None]  # (N, H, 1)
        xx = np.clip(cols[None, :] + dxs[:, t:t + 1], 0, w - 1)[:, None, :]  # (N, 1, W)
        out += weights[t] * batch[nidx, yy, xx]
    return out


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """An anti-aliased disk (the defocus kernel): 17x17 support for radius <= 8, smoothed by a 3x3 Gaussian."""
    if radius <= 8:
        support = np.arange(-8, 9)
        ksize = (3, 3)
    else:
        support = np.arange(-int(radius), int(radius) + 1)
        ksize = (5, 5)
    xx, yy = np.meshgrid(support, support)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)


def to_uint8(batch: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 the way the reference stores them: clip, scale by 255, truncate."""
    return (np.clip(batch, 0.0, 1.0) * 255.0).astype(np.uint8)
