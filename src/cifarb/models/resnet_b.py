"""CIFAR ResNet-20/32/44/56 with 1x1-conv projection shortcuts ("option B"), in chenyaofo's parameter names.

Layout of github.com/chenyaofo/pytorch-cifar-models (BSD-3, Copyright (c) 2021, chenyaofo), re-implemented
here: `conv1/bn1`, `layer1..3.N.{conv1,bn1,conv2,bn2}`, `layerK.0.downsample.{0,1}` (1x1 conv + BN) where
the width or stride changes, and a linear head `fc`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResNetB", "resnet20_b", "resnet32_b", "resnet44_b", "resnet56_b"]


class _Block(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, plus the input (projected by `downsample` when shapes change), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(y + skip)


class ResNetB(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: widths 16/32/64, projection shortcuts, global average pool, `fc`."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        c_in = 16
        for i, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            stage = []
            for j in range(blocks_per_stage):
                stage.append(_Block(c_in, width, stride if j == 0 else 1))
                c_in = width
            setattr(self, f"layer{i}", nn.Sequential(*stage))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _build(depth: int, num_classes: int, options: dict[str, Any]) -> ResNetB:
    if options:
        from cifarb.errors import CifarbError

        raise CifarbError(f"resnet{depth}_b takes no options besides num_classes; got {sorted(options)}")
    return ResNetB((depth - 2) // 6, num_classes)


def resnet20_b(num_classes: int = 10, **options: Any) -> ResNetB:
    """ResNet-20, option-B shortcuts (0.27 M parameters for 10 classes, 0.28 M for 100)."""
    return _build(20, num_classes, options)


def resnet32_b(num_classes: int = 10, **options: Any) -> ResNetB:
    """ResNet-32, option-B shortcuts (0.47 M parameters)."""
    return _build(32, num_classes, options)


def resnet44_b(num_classes: int = 10, **options: Any) -> ResNetB:
    """ResNet-44, option-B shortcuts (0.66 M parameters for 10 classes, 0.67 M for 100)."""
    return _build(44, num_classes, options)


def resnet56_b(num_classes: int = 10, **options: Any) -> ResNetB:
    """ResNet-56, option-B shortcuts (0.86 M parameters)."""
    return _build(56, num_classes, options)
