"""Digital corruptions: contrast, elastic transform, pixelate and JPEG compression."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from cifarb.data.corruptions import _ops
from cifarb.data.corruptions._ops import Rngs, draw, to_uint8


def contrast(images: np.ndarray, c: float, rngs: Rngs, seed: int) -> np.ndarray:
    x = images / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)  # per image and channel
    return to_uint8((x - means) * c + means)


def elastic_transform(images: np.ndarray, p: tuple[float, float, float], rngs: Rngs, seed: int) -> np.ndarray:
    """A random affine jitter of three anchor points, then a smoothed random displacement field."""
    alpha, sigma, jitter = p
    n, h, w, ch = images.shape
    x = images.astype(np.float32) / 255
    centre = np.float32([h, w]) // 2
    side = min(h, w) // 3
    anchors = np.float32([centre + side, [centre[0] + side, centre[1] - side], centre - side])
    # draw order per image: affine jitter (3x2), then the dx and dy fields
    draws = draw(rngs, lambda g: np.concatenate([g.uniform(-jitter, jitter, size=6), g.uniform(-1, 1, size=2 * h * w)]))
    warped = np.empty_like(x)
    for i in range(n):  # one small cv2 call per image
        moved = anchors + draws[i, :6].reshape(3, 2).astype(np.float32)
        matrix = cv2.getAffineTransform(anchors, moved)
        warped[i] = cv2.warpAffine(x[i], matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    fields = draws[:, 6:].reshape(n, 2, h, w)
    dx = (_ops.gaussian(fields[:, 0], sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dy = (_ops.gaussian(fields[:, 1], sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    nn, yy, xx, cc = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), np.arange(ch), indexing="ij")
    coords = np.stack([nn, yy + dy[..., None], xx + dx[..., None], cc]).reshape(4, -1)
    out = ndimage.map_coordinates(warped, coords, order=1, mode="reflect").reshape(warped.shape)
    return to_uint8(out)


def pixelate(images: np.ndarray, c: float, rngs: Rngs, seed: int) -> np.ndarray:
    n, h, w = images.shape[:3]
    small = (int(w * c), int(h * c))
    out = np.empty_like(images)
    for i in range(n):  # Pillow resizes one image at a time
        img = Image.fromarray(images[i]).resize(small, Image.Resampling.BOX)
        out[i] = np.asarray(img.resize((w, h), Image.Resampling.BOX))
    return out


def jpeg_compression(images: np.ndarray, quality: int, rngs: Rngs, seed: int) -> np.ndarray:
    out = np.empty_like(images)
    for i in range(images.shape[0]):  # Pillow encodes one image at a time
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return out
