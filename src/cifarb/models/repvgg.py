"""CIFAR RepVGG-A0/A1/A2 (training-time form, three branches per block), in chenyaofo's parameter names.

Layout of github.com/chenyaofo/pytorch-cifar-models (BSD-3, Copyright (c) 2021, chenyaofo), itself after
DingXiaoH/RepVGG (MIT), re-implemented here with the first two stages at stride 1 for 32x32 inputs.
Each block sums `rbr_dense` (3x3 conv + BN), `rbr_1x1` (1x1 conv + BN) and, where the shape is kept,
`rbr_identity` (BN only), then applies ReLU; stages `stage0..4`, head `linear`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RepVGG", "repvgg_a0", "repvgg_a1", "repvgg_a2"]

_BLOCKS = (2, 4, 14, 1)  # blocks in stage1..4 of the A series
_WIDTH_MULT = {"a0": (0.75, 0.75, 0.75, 2.5), "a1": (1.0, 1.0, 1.0, 2.5), "a2": (1.5, 1.5, 1.5, 2.75)}


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False))
    seq.add_module("bn", nn.BatchNorm2d(c_out))
    return seq


class _Block(nn.Module):
    """ReLU(BN(conv3x3 x) + BN(conv1x1 x) [+ BN(x)])."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.rbr_identity = nn.BatchNorm2d(c_in) if c_in == c_out and stride == 1 else None
        self.rbr_dense = _conv_bn(c_in, c_out, 3, stride)
        self.rbr_1x1 = _conv_bn(c_in, c_out, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return F.relu(out)


class RepVGG(nn.Module):
    """RepVGG-A for 32x32 inputs: a stem block, four stages (strides 1, 2, 2, 2), global pool, `linear`."""

    def __init__(self, width_mult: tuple[float, float, float, float], num_classes: int = 10) -> None:
        super().__init__()
        c_in = min(64, int(64 * width_mult[0]))
        self.stage0 = _Block(3, c_in, 1)
        for i, (n, base, mult, stride) in enumerate(zip(_BLOCKS, (64, 128, 256, 512), width_mult, (1, 2, 2, 2)),
                                                   start=1):
            c_out = int(base * mult)
            blocks = []
            for j in range(n):
                blocks.append(_Block(c_in, c_out, stride if j == 0 else 1))
                c_in = c_out
            setattr(self, f"stage{i}", nn.Sequential(*blocks))
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.stage0(x)))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _build(variant: str, num_classes: int, options: dict[str, Any]) -> RepVGG:
    if options:
        from cifarb.errors import CifarbError

        raise CifarbError(f"repvgg_{variant} takes no options besides num_classes; got {sorted(options)}")
    return RepVGG(_WIDTH_MULT[variant], num_classes)


def repvgg_a0(num_classes: int = 10, **options: Any) -> RepVGG:
    """RepVGG-A0 (7.84 M parameters for 10 classes, 7.96 M for 100)."""
    return _build("a0", num_classes, options)


def repvgg_a1(num_classes: int = 10, **options: Any) -> RepVGG:
    """RepVGG-A1 (12.82 M parameters for 10 classes)."""
    return _build("a1", num_classes, options)


def repvgg_a2(num_classes: int = 10, **options: Any) -> RepVGG:
    """RepVGG-A2 (26.82 M parameters for 10 classes)."""
    return _build("a2", num_classes, options)
