"""Vectorised uint8 batch augmentations: identity, pad-4 random crop + horizontal flip, and cutout."""

from __future__ import annotations

from typing import Any

import torch

from cifarb.augment.base import BatchAugmentation
from cifarb.errors import CifarbError

__all__ = ["Identity", "CropFlip", "Cutout", "crop_flip", "cutout"]


def _as_views(images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """View (N, C, H, W) or (N, V, C, H, W) as (N, V*C, H, W), so per-image parameters cover all views."""
    if images.dim() == 4:
        return images, images.shape
    if images.dim() == 5:
        n, v, c, h, w = images.shape
        return images.reshape(n, v * c, h, w), images.shape
    raise ValueError(f"expected a (N, C, H, W) or (N, V, C, H, W) batch, got shape {tuple(images.shape)}")


def crop_flip(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    padding: int = 4,
    pad_mode: str = "zero",
    flip: bool = True,
) -> torch.Tensor:
    """Random `padding`-pixel translation crop and horizontal flip of a batch, in one gather.

    Equivalent to padding every image by `padding` (zeros or reflection), cropping a random H x W window
    and flipping it with probability 1/2, but nothing is padded: each output pixel's source index is
    computed (reflected or masked at the border) and gathered directly.
    """
    x, shape = _as_views(images)
    n, c, h, w = x.shape
    dev = x.device
    # Random numbers from the CPU generator, so a seed gives the same batch on every device.
    dy = torch.randint(-padding, padding + 1, (n,), generator=generator).to(dev)
    dx = torch.randint(-padding, padding + 1, (n,), generator=generator).to(dev)
    flips = (
        torch.rand(n, generator=generator).to(dev) < 0.5
        if flip
        else torch.zeros(n, dtype=torch.bool, device=dev)
    )
    rows = torch.arange(h, device=dev).unsqueeze(0) + dy.unsqueeze(1)  # (N, H)
    ar_w = torch.arange(w, device=dev).unsqueeze(0)
    cols = torch.where(flips.unsqueeze(1), (w - 1) - ar_w, ar_w) + dx.unsqueeze(1)  # (N, W)
    if pad_mode == "reflect":
        rows = rows.abs()
        rows = torch.where(rows > h - 1, 2 * (h - 1) - rows, rows)
        cols = cols.abs()
        cols = torch.where(cols > w - 1, 2 * (w - 1) - cols, cols)
        valid = None
    elif pad_mode == "zero":
        valid = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
        rows = rows.clamp(0, h - 1)
        cols = cols.clamp(0, w - 1)
    else:
        raise CifarbError(f"unknown crop pad mode {pad_mode!r}; use 'zero' or 'reflect'")
    index = (rows.unsqueeze(2) * w + cols.unsqueeze(1)).view(n, 1, h * w).expand(n, c, h * w)
    out = torch.gather(x.reshape(n, c, h * w), 2, index).view(n, c, h, w)
    if valid is not None:
        out = out * valid.unsqueeze(1).to(out.dtype)
    return out.reshape(shape)


def cutout(
    images: torch.Tensor, generator: torch.Generator, *, size: int, fill: torch.Tensor
) -> torch.Tensor:
    """Fill one `size` x `size` square per image (centre uniform over the image, clipped at the border).

    `fill` is a per-channel uint8 value (C,) — DeVries & Taylor zero the patch after normalisation,
    which is the dataset-mean colour before it.
    """
    x, shape = _as_views(images)
    n, vc, h, w = x.shape
    dev = x.device
    cy = torch.randint(0, h, (n,), generator=generator).to(dev)
    cx = torch.randint(0, w, (n,), generator=generator).to(dev)
    half = size // 2
    ar_h = torch.arange(h, device=dev).unsqueeze(0)
    ar_w = torch.arange(w, device=dev).unsqueeze(0)
    in_rows = (ar_h >= (cy - half).unsqueeze(1)) & (ar_h < (cy - half + size).unsqueeze(1))
    in_cols = (ar_w >= (cx - half).unsqueeze(1)) & (ar_w < (cx - half + size).unsqueeze(1))
    mask = (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(1)  # (N, 1, H, W)
    c = fill.numel()
    fill_vc = fill.to(device=dev, dtype=x.dtype).repeat(vc // c).view(1, vc, 1, 1)
    return torch.where(mask, fill_vc, x).reshape(shape)


class Identity(BatchAugmentation):
    """`none`: leaves images unchanged."""

    name = "none"

    def __call__(self, images, labels, generator):
        return images, labels


class CropFlip(BatchAugmentation):
    """`standard`: pad-4 random crop + horizontal flip, batched."""

    name = "standard"
    priority = 10

    def __init__(self, padding: int = 4, pad_mode: str = "zero", flip: bool = True) -> None:
        if padding < 0:
            raise CifarbError(f"crop_padding must be >= 0, got {padding}")
        if pad_mode not in ("zero", "reflect"):
            raise CifarbError(f"unknown crop_pad_mode {pad_mode!r}; use 'zero' or 'reflect'")
        self.padding, self.pad_mode, self.flip = int(padding), pad_mode, bool(flip)

    def __call__(self, images, labels, generator):
        return crop_flip(
            images, generator, padding=self.padding, pad_mode=self.pad_mode, flip=self.flip
        ), labels

    def config(self) -> dict[str, Any]:
        return {"crop_padding": self.padding, "crop_pad_mode": self.pad_mode, "flip": self.flip}


class Cutout(BatchAugmentation):
    """`cutout`: one square per image (16x16 for 10 classes, 8x8 for 100, as in DeVries & Taylor 2017)."""

    name = "cutout"
    priority = 90

    def __init__(self, size: int, fill: tuple[int, ...]) -> None:
        if size <= 0:
            raise CifarbError(f"cutout_size must be positive, got {size}")
        self.size = int(size)
        self.fill = torch.tensor(fill, dtype=torch.uint8)

    def __call__(self, images, labels, generator):
        return cutout(images, generator, size=self.size, fill=self.fill), labels

    def config(self) -> dict[str, Any]:
        return {"cutout_size": self.size, "cutout_fill": self.fill.tolist()}


def make_identity(num_classes: int, **opts: Any) -> Identity:
    return Identity()


def make_crop_flip(num_classes: int, **opts: Any) -> CropFlip:
    return CropFlip(
        padding=opts.get("crop_padding", 4),
        pad_mode=opts.get("crop_pad_mode", "zero"),
        flip=opts.get("flip", True),
    )


def make_cutout(num_classes: int, **opts: Any) -> Cutout:
    size = opts.get("cutout_size") or (16 if num_classes <= 10 else 8)
    fill = opts.get("cutout_fill", "mean")
    if fill == "mean":
        fill = tuple(round(255 * m) for m in opts["mean"])
    elif isinstance(fill, int):
        fill = (fill, fill, fill)
    return Cutout(size=size, fill=tuple(int(v) for v in fill))
