"""ResNet-18 with a CIFAR stem (3x3 conv, stride 1, no max-pool), parameter names as kuangliu/pytorch-cifar."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cifarb.models import resnet_cifar
from cifarb.models.resnet_cifar import make_stage

__all__ = ["CifarResNet18", "resnet18"]


class BasicBlock(resnet_cifar.BasicBlock):
    """Two 3x3 conv-BN layers; a 1x1 conv-BN projection shortcut when the shape changes ("option B")."""

    def make_shortcut(self, in_planes: int, planes: int, stride: int) -> nn.Module:
        if stride != 1 or in_planes != planes:
            return nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        return nn.Sequential()


class CifarResNet18(nn.Module):
    """ResNet-18 layout (2-2-2-2 blocks, widths 64-512) for 32x32 inputs: all four stages run at 32/16/8/4 px."""

    def __init__(self, num_blocks: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, num_blocks[0], 1)
        self.layer2 = self._make_layer(128, num_blocks[1], 2)
        self.layer3 = self._make_layer(256, num_blocks[2], 2)
        self.layer4 = self._make_layer(512, num_blocks[3], 2)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        stage, self.in_planes = make_stage(BasicBlock, self.in_planes, planes, blocks, stride)
        return stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def resnet18(num_classes: int = 10, **options: Any) -> CifarResNet18:
    """ResNet-18, CIFAR stem: 11.17 M parameters for 10 classes."""
    if options:
        from cifarb.errors import CifarbError

        raise CifarbError(f"resnet18 takes no options besides num_classes; got {sorted(options)}")
    return CifarResNet18((2, 2, 2, 2), num_classes=num_classes)
