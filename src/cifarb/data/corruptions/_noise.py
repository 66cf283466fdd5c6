"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise."""

from __future__ import annotations

import numpy as np

from cifarb.data.corruptions._ops import Rngs, draw, to_uint8

SHAPE = (32, 32, 3)


def gaussian_noise(images: np.ndarray, c: float, rngs: Rngs, seed: int) -> np.ndarray:
    x = images / np.float32(255)
    noise = draw(rngs, lambda g: g.standard_normal(SHAPE, dtype=np.float32))
    return to_uint8(x + noise * np.float32(c))


def shot_noise(images: np.ndarray, c: float, rngs: Rngs, seed: int) -> np.ndarray:
    rate = images / 255.0 * c
    counts = np.stack([g.poisson(lam) for g, lam in zip(rngs, rate)])
    return to_uint8(counts / c)


def impulse_noise(images: np.ndarray, c: float, rngs: Rngs, seed: int) -> np.ndarray:
    # skimage.util.random_noise(mode="s&p", salt_vs_pepper=0.5) semantics: each value independently is hit
    # with probability c, and a hit is salt (1) or pepper (0) with equal odds.
    x = images / np.float32(255)
    u = draw(rngs, lambda g: g.random((2, *SHAPE), dtype=np.float32))
    hit = u[:, 0] <= c
    salt = u[:, 1] <= 0.5
    x = np.where(hit & salt, np.float32(1), x)
    x = np.where(hit & ~salt, np.float32(0), x)
    return to_uint8(x)


def speckle_noise(images: np.ndarray, c: float, rngs: Rngs, seed: int) -> np.ndarray:
    x = images / np.float32(255)
    noise = draw(rngs, lambda g: g.standard_normal(SHAPE, dtype=np.float32))
    return to_uint8(x + x * noise * np.float32(c))
