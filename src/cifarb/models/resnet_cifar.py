"""CIFAR ResNet-20/32/44/56/110 with "option A" shortcuts, using the pytorch_resnet_cifar10 parameter names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CifarResNet", "BasicBlock", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]


class _ShortcutA(nn.Module):
    """Parameter-free shortcut: subsample by 2 and zero-pad the new channels (He et al. 2016, option A)."""

    def __init__(self, pad_channels: int) -> None:
        super().__init__()
        self.pad_channels = pad_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad_channels
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))


def make_stage(block: Callable[[int, int, int], nn.Module], in_planes: int, planes: int, blocks: int,
               stride: int) -> tuple[nn.Sequential, int]:
    """(`blocks` residual blocks, the first with `stride`; the planes they end with): the usual
    `_make_layer`, whose module tree (layerN.M.*) the published checkpoints' keys follow."""
    layers = []
    for s in [stride] + [1] * (blocks - 1):
        layers.append(block(in_planes, planes, s))
        in_planes = planes
    return nn.Sequential(*layers), in_planes


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or option-A) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = self.make_shortcut(in_planes, planes, stride)

    def make_shortcut(self, in_planes: int, planes: int, stride: int) -> nn.Module:
        # The published checkpoints have no shortcut parameters, so the shortcut must stay parameter-free.
        if stride != 1 or in_planes != planes:
            return _ShortcutA((planes - in_planes) // 2)
        return nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: widths 16/32/64, global average pool, linear head."""

    def __init__(self, num_blocks: tuple[int, int, int], num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        stage, self.in_planes = make_stage(BasicBlock, self.in_planes, planes, blocks, stride)
        return stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def _depth(depth: int, num_classes: int, options: dict[str, Any]) -> CifarResNet:
    if options:
        from cifarb.errors import CifarbError

        raise CifarbError(f"resnet{depth} takes no options besides num_classes; got {sorted(options)}")
    n = (depth - 2) // 6
    return CifarResNet((n, n, n), num_classes=num_classes)


def resnet20(num_classes: int = 10, **options: Any) -> CifarResNet:
    """ResNet-20 (0.27 M parameters for 10 classes)."""
    return _depth(20, num_classes, options)


def resnet32(num_classes: int = 10, **options: Any) -> CifarResNet:
    """ResNet-32 (0.46 M parameters for 10 classes)."""
    return _depth(32, num_classes, options)


def resnet44(num_classes: int = 10, **options: Any) -> CifarResNet:
    """ResNet-44 (0.66 M parameters for 10 classes)."""
    return _depth(44, num_classes, options)


def resnet56(num_classes: int = 10, **options: Any) -> CifarResNet:
    """ResNet-56 (0.85 M parameters for 10 classes)."""
    return _depth(56, num_classes, options)


def resnet110(num_classes: int = 10, **options: Any) -> CifarResNet:
    """ResNet-110 (1.7 M parameters for 10 classes)."""
    return _depth(110, num_classes, options)
