"""CIFAR VGG-11/13/16/19 with batch norm and a 512-512 classifier, in chenyaofo's parameter names.

Layout of github.com/chenyaofo/pytorch-cifar-models (BSD-3, Copyright (c) 2021, chenyaofo), re-implemented
here: `features.i` is the flat list conv3x3(+bias), BN, ReLU per layer and one max-pool per stage (five
pools take 32x32 to 1x1), and `classifier.{0,3,6}` are the three linear layers (ReLU and dropout between).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["VGGBN", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]

# convolutions per stage; the widths are 64, 128, 256, 512, 512 (Simonyan & Zisserman's configs A/B/D/E)
_CONVS_PER_STAGE = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)


class VGGBN(nn.Module):
    """VGG with BN for 32x32 inputs: conv stages, flatten (512), 512-512-num_classes linear head."""

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for n, width in zip(_CONVS_PER_STAGE[depth], _WIDTHS):
            for _ in range(n):
                layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                c_in = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(512, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _build(depth: int, num_classes: int, options: dict[str, Any]) -> VGGBN:
    if options:
        from cifarb.errors import CifarbError

        raise CifarbError(f"vgg{depth}_bn takes no options besides num_classes; got {sorted(options)}")
    return VGGBN(depth, num_classes)


def vgg11_bn(num_classes: int = 10, **options: Any) -> VGGBN:
    """VGG-11 with BN (9.76 M parameters for 10 classes)."""
    return _build(11, num_classes, options)


def vgg13_bn(num_classes: int = 10, **options: Any) -> VGGBN:
    """VGG-13 with BN (9.94 M parameters for 10 classes)."""
    return _build(13, num_classes, options)


def vgg16_bn(num_classes: int = 10, **options: Any) -> VGGBN:
    """VGG-16 with BN (15.25 M parameters for 10 classes)."""
    return _build(16, num_classes, options)


def vgg19_bn(num_classes: int = 10, **options: Any) -> VGGBN:
    """VGG-19 with BN (20.57 M parameters for 10 classes)."""
    return _build(19, num_classes, options)
