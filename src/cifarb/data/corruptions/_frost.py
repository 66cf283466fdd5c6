"""The frost photographs of the reference (found in the installed `imagecorruptions` package), and a fallback.

The reference blends a random 32x32 crop of one of five frost photographs (downscaled by 0.2) into the
image. cifarb does not ship the photographs: `frost_photos()` finds them in the `imagecorruptions`
package (Apache-2.0, the same files as the reference's), without importing it, and checks their sha256.
Only when they are missing does cifarb fall back, loudly, to a procedural substitute, a bank of five
seeded "frost plates":
a tinted, bluish-white base, low-frequency mottling (plasma fractal), dendritic ice crystals (branching
strokes at 60 degree angles, drawn at 2x and area-downsampled) and fine grain. The bank depends only on the
seed, and its statistics were tuned to the range measured on the five photographs at the 0.2 scale
(see PHOTO_STATS); each image then takes a random plate and crop, as in the reference.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from cifarb.data.corruptions._ops import plasma_count, plasma_fractal

PLATES = 5
PLATE_SIZE = 128

# The reference's photographs (hendrycks/robustness ImageNet-C/create_c/, byte-identical in imagecorruptions
# 1.1.2's frost/ folder). Its CIFAR frost picks randint(5), so frost6.jpg is never used.
PHOTO_SHA256 = {
    "frost1.png": "ff9f907860bd7a835d459e32f9d588062b7f61ee267343cc7222b56753a14755",
    "frost2.png": "fe211a89b336999c207a852ce05818d4545d0b57c5beadd824b4cc9d9a9b6137",
    "frost3.png": "2d0d50b4a9bb213f38b024ef7768731bb83cc08d2f26b5766bbc167cdfa0e504",
    "frost4.jpg": "3f8b91ca1a9fa7167b09e773da53f5ae60d0a1fd88f02a783f6e328a72887f6e",
    "frost5.jpg": "5fc6a19df4a429ba68abdcc8f8a4278d4c9f81c9ccafd2c92ab0c8cf8992ebd2",
}
PHOTO_SCALE = 0.2  # the reference's cv2.resize(fx=fy=0.2) for 32x32 images
INSTALL_HINT = "pip install --no-deps imagecorruptions==1.1.2"


def photo_folder() -> Path | None:
    """The installed `imagecorruptions/frost` folder, located without importing the package (its import
    needs pkg_resources, which current setuptools no longer has)."""
    try:
        spec = importlib.util.find_spec("imagecorruptions")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "frost"


@functools.lru_cache(maxsize=1)
def frost_photos() -> tuple[tuple[np.ndarray, ...], str | None]:
    """The five photographs at the reference's scale, uint8 RGB, or ((), why not) when they cannot be used."""
    folder = photo_folder()
    if folder is None:
        return (), f"the imagecorruptions package is not installed ({INSTALL_HINT})"
    photos = []
    for name, digest in PHOTO_SHA256.items():
        path = folder / name
        try:
            data = path.read_bytes()
        except OSError:
            return (), f"{path} is missing (reinstall: {INSTALL_HINT})"
        if hashlib.sha256(data).hexdigest() != digest:
            return (), f"{path} is not the reference's photograph (sha256 differs; reinstall: {INSTALL_HINT})"
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        small = cv2.resize(bgr, (0, 0), fx=PHOTO_SCALE, fy=PHOTO_SCALE)  # INTER_LINEAR, as the reference
        photos.append(np.ascontiguousarray(small[..., ::-1]))  # BGR -> RGB
    return tuple(photos), None

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
