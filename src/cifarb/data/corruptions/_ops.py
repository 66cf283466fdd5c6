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

    Done as two small matrix products over the whole batch instead of one ndimage.zoom per image.
    """
    m = _zoom_matrix(batch.shape[1], float(factor)).astype(batch.dtype)
    return np.einsum("ij,njkc,lk->nilc", m, batch, m, optimize=True)


@functools.lru_cache(maxsize=16)
def _zoom_sum_operator(size: int, factors: tuple[float, ...]) -> np.ndarray:
    """(size^2, size^2) matrix of "the image plus its clipped zooms by every factor", on row-major pixels."""
    total = np.eye(size * size)
    for factor in factors:
        m = _zoom_matrix(size, float(factor))
        total += np.kron(m, m)  # vec(M X M^T) = (M kron M) vec(X) for row-major vec
    return total.astype(np.float32)


def zoom_sum(batch: np.ndarray, factors: Sequence[float]) -> np.ndarray:
    """x + sum_f clipped_zoom(x, f) for a (N, H, H, C) float batch, as one matrix product (zoom blur's core)."""
    n, h, _, c = batch.shape
    op = _zoom_sum_operator(h, tuple(float(f) for f in factors))
    cols = np.ascontiguousarray(batch.transpose(1, 2, 0, 3)).reshape(h * h, n * c).astype(np.float32)
    return (op @ cols).reshape(h, h, n, c).transpose(2, 0, 1, 3)


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
    """Blur each (H, W[, C]) image of the batch along its own angle (degrees); edges are replicated.

    Per tap, images whose angles round to the same integer offset are shifted together as one slice of the
    edge-padded batch, which is cheaper than a per-pixel gather.
    """
    n, h, w = batch.shape[:3]
    taps = [motion_kernel(radius, sigma, a) for a in np.asarray(angles, dtype=np.float64)]
    weights = taps[0][0]  # the weights depend on radius and sigma only
    dxs = np.stack([t[1] for t in taps])  # (N, taps)
    dys = np.stack([t[2] for t in taps])
    pad = int(max(np.abs(dxs).max(), np.abs(dys).max()))
    padded = np.pad(batch, [(0, 0), (pad, pad), (pad, pad)] + [(0, 0)] * (batch.ndim - 3), mode="edge")
    out = np.zeros(batch.shape, dtype=np.float64)
    for t in range(weights.size):
        offsets, group = np.unique(np.stack([dys[:, t], dxs[:, t]], axis=1), axis=0, return_inverse=True)
        for g, (dy, dx) in enumerate(offsets):
            sel = np.flatnonzero(group.ravel() == g)
            out[sel] += weights[t] * padded[sel, pad + dy:pad + dy + h, pad + dx:pad + dx + w]
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


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (..., 3) to HSV in [0, 1], the textbook hexcone formulas, as scikit-image computes them.

    Where two channels tie for the maximum, the later channel's formula is used (blue over green over red),
    which is the order scikit-image applies; grey pixels get hue 0 and saturation 0.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    delta = v - rgb.min(axis=-1)
    grey = delta == 0
    safe = np.where(grey, 1.0, delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(grey, 0.0, delta / v)
    h = np.where(b == v, 4.0 + (r - g) / safe, np.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    h = np.where(grey, 0.0, (h / 6.0) % 1.0)
    return np.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] (..., 3) back to RGB: the hexcone sector of the hue picks each channel's formula."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = np.floor(h * 6)
    f = h * 6 - sector
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    k = sector.astype(np.int64) % 6
    # sectors 0..5 give (R, G, B) = (v,t,p), (q,v,p), (p,v,t), (p,q,v), (t,p,v), (v,p,q)
    red = np.choose(k, (v, q, p, p, t, v))
    green = np.choose(k, (t, v, v, q, p, p))
    blue = np.choose(k, (p, p, t, v, v, q))
    return np.stack([red, green, blue], axis=-1)


def imagemagick_q16_to_uint8(values: np.ndarray) -> np.ndarray:
    """The 8-bit pixels ImageMagick 6 Q16 (non-HDRI) writes for a filter whose exact result is `values` (0-255).

    The reference runs motion blur (and snow's streaks) through ImageMagick: it reads the 8-bit PNG into
    16-bit quanta (v * 257), rounds the filter's floating-point result to the nearest 16-bit quantum
    (ClampToQuantum), and its 8-bit PNG writer then truncates (q // 257). Measured against
    ImageMagick 6.9.11-60 Q16 (Debian 12): identical on every value; IM7 and HDRI builds round differently.
    Plain rounding of `values` differs from this by 1 on about half of them.
    """
    quanta = np.floor(np.clip(values, 0.0, 255.0) * 257.0 + 0.5)
    return (quanta // 257).astype(np.uint8)


def wrap_uint8(values: np.ndarray) -> np.ndarray:
    """numpy's bare float -> uint8 cast as it behaves on x86-64 (truncate, then wrap modulo 256), portably.

    The reference's spatter casts drop intensities above 255 this way (270.6 -> 14); the cast itself is
    undefined in C for out-of-range values, so we spell out what the reference's platform did.
    """
    return (np.trunc(values).astype(np.int64) % 256).astype(np.uint8)


def to_uint8(batch: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 the way the reference stores them: clip, scale by 255, truncate."""
    return (np.clip(batch, 0.0, 1.0) * 255.0).astype(np.uint8)
