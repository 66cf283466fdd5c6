"""Batch mixing on float images with soft targets: mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cifarb.augment.base import MixAugmentation
from cifarb.errors import CifarbError

__all__ = ["Mixup", "CutMix", "sample_beta", "cutmix_box"]


def sample_beta(alpha: float, generator: torch.Generator) -> float:
    """Beta(alpha, alpha) draw keyed by a torch generator (torch's Beta sampler takes no generator)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def cutmix_box(lam: float, h: int, w: int, generator: torch.Generator) -> tuple[int, int, int, int]:
    """Box (y0, y1, x0, x1) of area about (1 - lam) h w, centre uniform, clipped at the border."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    return y0, y1, x0, x1


class Mixup(MixAugmentation):
    """`mixup`: x = lam x + (1 - lam) x[perm], same for targets; lam ~ Beta(alpha, alpha), one per batch."""

    name = "mixup"

    def __init__(self, alpha: float = 1.0) -> None:
        if alpha <= 0:
            raise CifarbError(f"mixup_alpha must be positive, got {alpha}")
        self.alpha = float(alpha)

    def __call__(self, x, targets, generator):
        lam = sample_beta(self.alpha, generator)
        perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
        # (1 - lam) x[perm] + lam x, written in place on the gathered copy: two passes instead of four
        return x[perm].mul_(1 - lam).add_(x, alpha=lam), targets[perm].mul_(1 - lam).add_(targets, alpha=lam)

    def config(self) -> dict[str, Any]:
        return {"mixup_alpha": self.alpha}


class CutMix(MixAugmentation):
    """`cutmix`: paste one box from x[perm]; targets mix with lam = the kept area fraction."""

    name = "cutmix"

    def __init__(self, alpha: float = 1.0) -> None:
        if alpha <= 0:
            raise CifarbError(f"cutmix_alpha must be positive, got {alpha}")
        self.alpha = float(alpha)

    def __call__(self, x, targets, generator):
        h, w = x.shape[-2:]
        lam = sample_beta(self.alpha, generator)
        perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
        y0, y1, x0, x1 = cutmix_box(lam, h, w, generator)
        out = x.clone()
        out[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        # The box was clipped, so the label weight is the area actually kept, not the drawn lam.
        kept = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        return out, kept * targets + (1 - kept) * targets[perm]

    def config(self) -> dict[str, Any]:
        return {"cutmix_alpha": self.alpha}


def make_mixup(num_classes: int, **opts: Any) -> Mixup:
    return Mixup(alpha=opts.get("mixup_alpha", 1.0))


def make_cutmix(num_classes: int, **opts: Any) -> CutMix:
    return CutMix(alpha=opts.get("cutmix_alpha", 1.0))
