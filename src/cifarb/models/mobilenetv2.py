"""CIFAR MobileNetV2 (width x0.5/0.75/1.0/1.4), in chenyaofo's parameter names.

Layout of github.com/chenyaofo/pytorch-cifar-models (BSD-3, Copyright (c) 2021, chenyaofo), re-implemented
here: torchvision's MobileNetV2 with the stem and the second stage at stride 1 for 32x32 inputs.
`features.0` is the stem (conv, BN, ReLU6), `features.1..17` the inverted residuals (`.conv.*`),
`features.18` the 1x1 conv to the last width, and `classifier.1` the linear head (after dropout 0.2).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MobileNetV2", "mobilenetv2_x0_5", "mobilenetv2_x0_75", "mobilenetv2_x1_0", "mobilenetv2_x1_4"]

# (expansion t, width c, repeats n, first stride s); stride 1 in the second row is the CIFAR change
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
           (6, 320, 1, 1))


def _round_width(v: float, divisor: int = 8) -> int:
    """The nearest multiple of `divisor` (at least `divisor`), never more than 10 % below v (MobileNet's rule)."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


def _conv_bn_relu6(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    """1x1 expand (skipped when t = 1), 3x3 depthwise, 1x1 linear projection; identity skip if shapes agree."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(c_in * expand))
        layers: list[nn.Module] = [] if expand == 1 else [_conv_bn_relu6(c_in, hidden, 1)]
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 for 32x32 inputs with channel widths scaled by `width_mult`."""

    def __init__(self, width_mult: float = 1.0, num_classes: int = 10) -> None:
        super().__init__()
        c_in = _round_width(32 * width_mult)
        last = _round_width(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [_conv_bn_relu6(3, c_in, 3)]
        for t, c, n, s in _STAGES:
            c_out = _round_width(c * width_mult)
            for i in range(n):
                layers.append(_InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
                c_in = c_out
        layers.append(_conv_bn_relu6(c_in, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def _build(width: float, name: str, num_classes: int, options: dict[str, Any]) -> MobileNetV2:
    if options:
        from cifarb.errors import CifarbError

        raise CifarbError(f"{name} takes no options besides num_classes; got {sorted(options)}")
    return MobileNetV2(width, num_classes)


def mobilenetv2_x0_5(num_classes: int = 10, **options: Any) -> MobileNetV2:
    """MobileNetV2 x0.5 (0.70 M parameters for 10 classes, 0.82 M for 100)."""
    return _build(0.5, "mobilenetv2_x0_5", num_classes, options)


def mobilenetv2_x0_75(num_classes: int = 10, **options: Any) -> MobileNetV2:
    """MobileNetV2 x0.75 (1.37 M parameters for 10 classes)."""
    return _build(0.75, "mobilenetv2_x0_75", num_classes, options)


def mobilenetv2_x1_0(num_classes: int = 10, **options: Any) -> MobileNetV2:
    """MobileNetV2 x1.0 (2.24 M parameters for 10 classes)."""
    return _build(1.0, "mobilenetv2_x1_0", num_classes, options)


def mobilenetv2_x1_4(num_classes: int = 10, **options: Any) -> MobileNetV2:
    """MobileNetV2 x1.4 (4.33 M parameters for 10 classes)."""
    return _build(1.4, "mobilenetv2_x1_4", num_classes, options)
