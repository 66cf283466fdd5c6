"""Wide ResNets (Zagoruyko & Komodakis 2016): pre-activation blocks, WRN-28-10 by default, depth/width options."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cifarb.errors import CifarbError

__all__ = ["WideResNet", "wrn28_10"]


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, with a 1x1 conv shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.dropout = float(dropout)
        self.equal_in_out = c_in == c_out and stride == 1
        self.conv_shortcut = (
            None if self.equal_in_out else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        # The projection reads the pre-activated input, as in the authors' code.
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(act)
        out = F.relu(self.bn2(self.conv1(act)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return shortcut + self.conv2(out)


class WideResNet(nn.Module):
    """WRN-depth-k: a 16-channel stem and three groups of (depth-4)/6 blocks at 16k, 32k, 64k channels."""

    def __init__(
        self, depth: int = 28, widen_factor: int = 10, dropout: float = 0.0, num_classes: int = 10
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise CifarbError(f"WRN depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
        if widen_factor < 1:
            raise CifarbError(f"WRN widen_factor must be >= 1, got {widen_factor}")
        if not 0.0 <= dropout < 1.0:
            raise CifarbError(f"WRN dropout must be in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.block1 = self._group(widths[0], widths[1], n, 1, dropout)
        self.block2 = self._group(widths[1], widths[2], n, 2, dropout)
        self.block3 = self._group(widths[2], widths[3], n, 2, dropout)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(
                    m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels))
                )
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    @staticmethod
    def _group(c_in: int, c_out: int, n: int, stride: int, dropout: float) -> nn.Sequential:
        return nn.Sequential(
            *[WideBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, dropout) for i in range(n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def wrn28_10(num_classes: int = 10, **options: Any) -> WideResNet:
    """WRN-28-10 (36.5 M parameters for 10 classes); options `depth`, `widen_factor`, `dropout` (default 0)."""
    allowed = {"depth", "widen_factor", "dropout"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise CifarbError(f"wrn28_10 options are {sorted(allowed)}; got unknown {unknown}")
    return WideResNet(
        depth=int(options.get("depth", 28)),
        widen_factor=int(options.get("widen_factor", 10)),
        dropout=float(options.get("dropout", 0.0)),
        num_classes=num_classes,
    )
