"""CIFAR ShuffleNetV2 (x0.5/1.0/1.5/2.0), in chenyaofo's parameter names.

Layout of github.com/chenyaofo/pytorch-cifar-models (BSD-3, Copyright (c) 2021, chenyaofo), re-implemented
here: torchvision's ShuffleNetV2 with a stride-1 stem and no max-pool for 32x32 inputs. `conv1` is the
stem, `stage2..4` the units (`branch1` only in each stage's first, strided unit), `conv5` the 1x1 conv
and `fc` the head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["ShuffleNetV2", "shufflenetv2_x0_5", "shufflenetv2_x1_0", "shufflenetv2_x1_5", "shufflenetv2_x2_0"]

_REPEATS = (4, 8, 4)
# stem, stage2, stage3, stage4, conv5 widths per width multiplier (Ma et al. 2018, table 5)
_WIDTHS = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}


def _depthwise_bn(c: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), nn.BatchNorm2d(c)]


def _pointwise_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class _Unit(nn.Module):
    """A ShuffleNetV2 unit: split (stride 1) or duplicate (stride 2) the input, transform, concat, shuffle."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        half = c_out // 2
        self.stride = stride
        # branch1 transforms the first half only in strided units; elsewhere it passes through untouched
        self.branch1 = (nn.Sequential(*_depthwise_bn(c_in, stride), *_pointwise_bn_relu(c_in, half))
                        if stride > 1 else nn.Sequential())
        self.branch2 = nn.Sequential(*_pointwise_bn_relu(c_in if stride > 1 else half, half),
                                     *_depthwise_bn(half, stride), *_pointwise_bn_relu(half, half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat((left, self.branch2(right)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        # channel shuffle with 2 groups: interleave the two halves
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 for 32x32 inputs; `widths` = (stem, stage2, stage3, stage4, conv5)."""

    def __init__(self, widths: tuple[int, int, int, int, int], num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True))
        c_in = widths[0]
        for i, (repeats, c_out) in enumerate(zip(_REPEATS, widths[1:4]), start=2):
            units = [_Unit(c_in, c_out, 2)] + [_Unit(c_out, c_out, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i}", nn.Sequential(*units))
            c_in = c_out
        self.conv5 = nn.Sequential(*_pointwise_bn_relu(c_in, widths[4]))
        self.fc = nn.Linear(widths[4], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.stage4(self.stage3(self.stage2(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def _build(width: str, num_classes: int, options: dict[str, Any]) -> ShuffleNetV2:
    if options:
        from cifarb.errors import CifarbError

        raise CifarbError(f"shufflenetv2_{width} takes no options besides num_classes; got {sorted(options)}")
    return ShuffleNetV2(_WIDTHS[width], num_classes)


def shufflenetv2_x0_5(num_classes: int = 10, **options: Any) -> ShuffleNetV2:
    """ShuffleNetV2 x0.5 (0.35 M parameters for 10 classes, 0.44 M for 100)."""
    return _build("x0_5", num_classes, options)


def shufflenetv2_x1_0(num_classes: int = 10, **options: Any) -> ShuffleNetV2:
    """ShuffleNetV2 x1.0 (1.26 M parameters for 10 classes)."""
    return _build("x1_0", num_classes, options)


def shufflenetv2_x1_5(num_classes: int = 10, **options: Any) -> ShuffleNetV2:
    """ShuffleNetV2 x1.5 (2.49 M parameters for 10 classes)."""
    return _build("x1_5", num_classes, options)


def shufflenetv2_x2_0(num_classes: int = 10, **options: Any) -> ShuffleNetV2:
    """ShuffleNetV2 x2.0 (5.37 M parameters for 10 classes)."""
    return _build("x2_0", num_classes, options)
