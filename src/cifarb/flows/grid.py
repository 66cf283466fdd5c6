"""Image grids (uint8 NHWC rows -> one PNG, written atomically) for samples, reconstructions and FlowAug figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cifarb._atomic import atomic_path


def to_nhwc(images: np.ndarray) -> np.ndarray:
    """Accept NCHW or NHWC uint8 (or a torch tensor) and return NHWC uint8."""
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim != 4:
        raise ValueError(f"expected a 4-d image batch, got shape {arr.shape}")
    if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(arr.astype(np.uint8))


def make_grid(rows: Sequence[np.ndarray], pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile rows of images (each an (n, H, W, 3) batch, n may differ) into one HxWx3 uint8 array."""
    rows = [to_nhwc(r) for r in rows]
    h, w = rows[0].shape[1:3]
    ncol = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), fill, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = img
    return grid


def save_grid(path: str | Path, rows: Sequence[np.ndarray], scale: int = 1, pad: int = 2) -> Path:
    """Write the grid of `rows` as a PNG atomically (optionally upscaled by an integer factor)."""
    from PIL import Image

    grid = make_grid(rows, pad=pad)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return Path(path)
