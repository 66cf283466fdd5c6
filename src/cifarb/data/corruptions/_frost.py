"""A procedural, seeded stand-in for the frost photographs that the reference frost corruption uses.

The reference blends a random 32x32 crop of one of five frost photographs (downscaled by 0.2) into the
image. Those photographs are not ours to ship, so we synthesise a bank of five "frost plates" instead:
a tinted, bluish-white base, low-frequency mottling (plasma fractal), dendritic ice crystals (branching
strokes at 60 degree angles, drawn at 2x and area-downsampled) and fine grain. The bank depends only on the
seed, and its statistics were tuned to the range measured on the five photographs at the 0.2 scale
(see PHOTO_STATS); each image then takes a random plate and crop, as in the reference.
"""

from __future__ import annotations

import cv2
import numpy as np

from cifarb.data.corruptions._ops import plasma_count, plasma_fractal

PLATES = 5
PLATE_SIZE = 128

# Measured on frost1-5 of the reference at fx = fy = 0.2 (what the reference crops from): per-channel mean
# of each photograph, std of all its values, and std of its grey high-pass (grey minus a sigma-2 Gaussian).
PHOTO_STATS = {
    "channel_mean_range": (77.5, 214.5),
    "std_range": (22.8, 44.0),
    "highpass_std_range": (10.1, 29.2),
}


def _crystals(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dendritic ice crystals in [0, 1]: a trunk per seed point with side branches at +-60 degrees."""
    scale = 2  # draw at 2x and downsample, which anti-aliases the thin strokes
    canvas = np.zeros((size * scale, size * scale), dtype=np.float32)
    n_seeds = int(rng.integers(25, 45))
    for _ in range(n_seeds):
        x0, y0 = rng.uniform(0, size * scale, size=2)
        theta = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(12, 60) * scale / 2
        level = float(rng.uniform(0.4, 1.0))
        stack = [(x0, y0, theta, length, level, 0)]
        while stack:
            x, y, th, ln, lv, depth = stack.pop()
            x1, y1 = x + ln * np.cos(th), y + ln * np.sin(th)
            cv2.line(canvas, (int(round(x)), int(round(y))), (int(round(x1)), int(round(y1))), lv, 1, cv2.LINE_AA)
            if depth >= 2 or ln < 3:
                continue
            for t in np.linspace(0.2, 0.9, int(rng.integers(2, 5))):
                bx, by = x + t * ln * np.cos(th), y + t * ln * np.sin(th)
                for side in (-1.0, 1.0):
                    if rng.random() < 0.8:
                        stack.append((bx, by, th + side * np.pi / 3, ln * (1 - t) * 0.6, lv * 0.85, depth + 1))
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(small / max(float(small.max()), 1e-6), 0, 1)


def frost_plates(seed_sequence: np.random.SeedSequence) -> np.ndarray:
    """The bank of frost plates, uint8 (PLATES, PLATE_SIZE, PLATE_SIZE, 3) RGB, a function of the seed only."""
    plates = []
    for child in seed_sequence.spawn(PLATES):
        rng = np.random.Generator(np.random.PCG64(child))
        blue = rng.uniform(130, 205)
        tint = np.array([rng.uniform(0.78, 0.95), rng.uniform(0.9, 0.97), 1.0])
        mottle = plasma_fractal(rng.uniform(-1, 1, size=(1, plasma_count(PLATE_SIZE))), PLATE_SIZE, 2.0)[0]
        mottle = (mottle - mottle.mean()) / (mottle.std() + 1e-9)
        grain = cv2.GaussianBlur(rng.standard_normal((PLATE_SIZE, PLATE_SIZE)).astype(np.float32), (0, 0), 0.6)
        grain /= grain.std() + 1e-9
        crystals = _crystals(rng, PLATE_SIZE)
        grey = (
            blue
            + rng.uniform(18, 32) * mottle
            + rng.uniform(12, 22) * grain
            + rng.uniform(70, 110) * (crystals - crystals.mean())
        )
        rgb = grey[..., None] * tint[None, None, :]
        plates.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(plates)
