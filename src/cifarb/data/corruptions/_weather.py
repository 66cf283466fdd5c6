"""Weather corruptions: snow, frost (the reference's photographs), fog (plasma fractal), brightness, spatter, saturate."""

from __future__ import annotations

import functools
import warnings
import zlib

import cv2
import numpy as np

from cifarb.data.corruptions import _ops
from cifarb.data.corruptions._frost import PLATE_SIZE, PLATES, frost_photos, frost_plates
from cifarb.data.corruptions._ops import Rngs, draw, to_uint8


def snow(images: np.ndarray, p: tuple, rngs: Rngs, seed: int) -> np.ndarray:
    loc, scale, zoom, threshold, radius, sigma, blend = p
    n, h, w = images.shape[:3]
    x = images.astype(np.float32) / 255
    # draw order per image: the snow field, then the blur angle
    field = draw(rngs, lambda g: np.concatenate([g.normal(loc, scale, size=h * w), [g.uniform(-135, -45)]]))
    layer, angles = field[:, :-1].reshape(n, h, w, 1), field[:, -1]
    layer = _ops.clipped_zoom(layer, zoom)[..., 0]
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8)  # the reference passes the layer through a PNG
    flakes = _ops.imagemagick_q16_to_uint8(_ops.motion_blur(layer.astype(np.float64), radius, sigma, angles))
    flakes = (flakes / 255.0)[..., None]  # float64, as the reference's cv2.imdecode(...) / 255.
    # cv2's own RGB2GRAY (as the reference), on the batch viewed as one tall image: a matmul with the same
    # weights differs in the last bit on ~19 % of values, which moved 3 of 15.6 M pixels
    grey = cv2.cvtColor(x.reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(n, h, w, 1)
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return to_uint8(x + flakes + flakes[:, ::-1, ::-1])


@functools.lru_cache(maxsize=4)
def _plates(seed: int) -> np.ndarray:
    # the plate bank depends on the seed only (not on severity or image), like the reference's fixed photos
    return frost_plates(np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(b"frost-plates"),)))


def frost(images: np.ndarray, p: tuple[float, float], rngs: Rngs, seed: int) -> np.ndarray:
    """c0 * image + c1 * a random 32x32 crop of one of the reference's five frost photographs (at 0.2 scale)."""
    photos, why_not = frost_photos()
    if not photos:
        warnings.warn(f"frost: the reference's frost photographs cannot be used ({why_not}); using the "
                      f"PROCEDURAL SUBSTITUTE, which is easier than the reference", UserWarning, stacklevel=3)
        return frost_substitute(images, p, rngs, seed)
    weight_image, weight_frost = p
    h, w = images.shape[1:3]
    crops = np.empty(images.shape, dtype=np.float64)
    for i, g in enumerate(rngs):
        # the reference's draws, in its order: photo randint(5), then the corner randint(0, H - 32), randint(0, W - 32)
        photo = photos[int(g.integers(len(photos)))]
        top = int(g.integers(0, photo.shape[0] - h))
        left = int(g.integers(0, photo.shape[1] - w))
        crops[i] = photo[top:top + h, left:left + w]
    out = weight_image * images.astype(np.float64) + weight_frost * crops
    return np.clip(out, 0, 255).astype(np.uint8)


def frost_substitute(images: np.ndarray, p: tuple[float, float], rngs: Rngs, seed: int) -> np.ndarray:
    """The fallback: crops of seeded procedural frost plates instead of the photographs (easier; see the docs)."""
    weight_image, weight_frost = p
    n, h, w = images.shape[:3]
    plates = _plates(seed)
    # per image: which plate (the reference picks among its first five photos), then the crop corner
    picks = draw(rngs, lambda g: np.array([g.integers(PLATES), *g.integers(0, PLATE_SIZE - h, size=2)]))
    rows = picks[:, 1, None] + np.arange(h)[None, :]
    cols = picks[:, 2, None] + np.arange(w)[None, :]
    crops = plates[picks[:, 0, None, None], rows[:, :, None], cols[:, None, :]]
    out = weight_image * images.astype(np.float64) + weight_frost * crops.astype(np.float64)
    return np.clip(out, 0, 255).astype(np.uint8)


def fog(images: np.ndarray, p: tuple[float, float], rngs: Rngs, seed: int) -> np.ndarray:
    strength, decay = p
    h = images.shape[1]
    x = images / 255.0
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    uniform = draw(rngs, lambda g: g.uniform(-1, 1, size=_ops.plasma_count(32)))
    haze = _ops.plasma_fractal(uniform, 32, decay)[:, :h, :h, None]
    x = x + strength * haze
    return to_uint8(x * (peak / (peak + strength)))  # the ratio first: exactly 1 at zero strength


def brightness(images: np.ndarray, c: float, rngs: Rngs, seed: int) -> np.ndarray:
    hsv = _ops.rgb_to_hsv(images / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return to_uint8(_ops.hsv_to_rgb(hsv))


def saturate(images: np.ndarray, p: tuple[float, float], rngs: Rngs, seed: int) -> np.ndarray:
    factor, offset = p
    hsv = _ops.rgb_to_hsv(images / 255.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * factor + offset, 0, 1)
    return to_uint8(_ops.hsv_to_rgb(hsv))


def spatter(images: np.ndarray, p: tuple, rngs: Rngs, seed: int) -> np.ndarray:
    """Water drops (severities 1-3) or mud (4-5), following the reference's OpenCV recipe."""
    loc, scale, smooth, threshold, intensity, mud = p
    n, h, w = images.shape[:3]
    x = images.astype(np.float32) / 255
    liquid = draw(rngs, lambda g: g.normal(loc, scale, size=(h, w)))
    liquid = _ops.gaussian(liquid, smooth)
    liquid[liquid < threshold] = 0
    if not mud:
        # the reference's bare uint8 cast wraps the values above 1 around (270 -> 14); so do we
        drops = _ops.wrap_uint8(liquid * 255)
        shade = np.empty((n, h, w), dtype=np.float32)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)
        for i in range(n):  # OpenCV's edge / distance / histogram steps are per image
            dist = 255 - cv2.Canny(drops[i], 50, 150)
            dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
            _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
            dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
            dist = cv2.equalizeHist(dist)
            dist = cv2.filter2D(dist, cv2.CV_8U, ker)
            shade[i] = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = drops.astype(np.float32) * shade
        peak = m.max(axis=(1, 2), keepdims=True)
        # no drops at all: the reference would divide 0 by 0; the image is simply left unchanged
        m = np.divide(m, peak, out=np.zeros_like(m), where=peak > 0) * intensity
        water = np.array([175, 238, 238], dtype=np.float32) / 255  # pale turquoise
        return to_uint8(x + m[..., None] * water)
    m = _ops.gaussian((liquid > threshold).astype(np.float32), intensity)
    m[m < 0.8] = 0
    mud_colour = np.array([63, 42, 20], dtype=np.float32) / 255  # mud brown
    return to_uint8(x * (1 - m[..., None]) + m[..., None] * mud_colour)
