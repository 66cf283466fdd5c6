"""torchvision ResNet-18/50 with ImageNet-pretrained weights, fine-tuned on 32x32 CIFAR by resizing inside the module.

The data path stays 32x32 uint8: the module upsamples its (already normalised) input to `image_size`
(default 224, the usual fine-tuning recipe) with bilinear interpolation before the ImageNet stem. With
pretrained weights, normalise with ImageNet's statistics (`IMAGENET_MEAN`, `IMAGENET_STD`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cifarb.errors import CifarbError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ResizingResNet", "resnet18_imagenet", "resnet50_imagenet"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision_resnet(kind: str) -> tuple[type, list[int], Any]:
    from torchvision.models import ResNet18_Weights, ResNet50_Weights
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return {
        "resnet18": (BasicBlock, [2, 2, 2, 2], ResNet18_Weights),
        "resnet50": (Bottleneck, [3, 4, 6, 3], ResNet50_Weights),
    }[kind]


def _resnet_base() -> type:
    from torchvision.models.resnet import ResNet

    return ResNet


class ResizingResNet(nn.Module):
    """A torchvision ResNet (`self.net`, torchvision's parameter names) behind a resize to `image_size`."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, kind: str, num_classes: int, image_size: int, weights: Any) -> None:
        super().__init__()
        block, layers, _ = _torchvision_resnet(kind)
        self.image_size = int(image_size)
        self.net = _resnet_base()(block, layers)
        if weights is not None:
            try:
                state = weights.get_state_dict(progress=True, check_hash=True)
            except Exception as exc:  # network, hash or disk errors: all fixable by the user
                raise CifarbError(
                    f"could not load the ImageNet weights {weights} for {kind}_imagenet ({exc}); connect to the "
                    f"internet once (torchvision caches them under $TORCH_HOME), or train from random init "
                    f"with pretrained=False (--no-pretrained)"
                ) from None
            self.net.load_state_dict(state)
        # A fresh head for the CIFAR classes; the ImageNet head does not transfer.
        self.net.fc = nn.Linear(self.net.fc.in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        return self.net(x)


def _build(kind: str, num_classes: int, options: dict[str, Any]) -> ResizingResNet:
    allowed = {"pretrained", "image_size", "weights"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise CifarbError(f"{kind}_imagenet options are {sorted(allowed)}; got unknown {unknown}")
    image_size = int(options.get("image_size", 224))
    if image_size < 32:
        raise CifarbError(f"image_size must be at least 32, got {image_size}")
    weights = None
    if options.get("pretrained", True):
        enum = _torchvision_resnet(kind)[2]
        name = options.get("weights", "DEFAULT")
        try:
            weights = enum.verify(name)
        except (ValueError, KeyError):
            raise CifarbError(
                f"unknown weights {name!r} for {kind}; choose one of: DEFAULT, {', '.join(w.name for w in enum)}"
            ) from None
    return ResizingResNet(kind, num_classes, image_size, weights)


def resnet18_imagenet(num_classes: int = 10, **options: Any) -> ResizingResNet:
    """torchvision ResNet-18; options `pretrained` (True: ImageNet weights, downloaded once), `image_size` (224),
    `weights` ("DEFAULT" or a torchvision ResNet18_Weights name)."""
    return _build("resnet18", num_classes, options)


def resnet50_imagenet(num_classes: int = 10, **options: Any) -> ResizingResNet:
    """torchvision ResNet-50; options as `resnet18_imagenet`."""
    return _build("resnet50", num_classes, options)
