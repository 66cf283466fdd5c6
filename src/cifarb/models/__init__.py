"""Classifier architectures (by contract name) and the model zoo.

`build_model(arch, num_classes)` imports the architecture's module lazily, so listing names is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

# contract names -> (module, factory). Factories take num_classes plus keyword options.
ARCHS: dict[str, tuple[str, str]] = {
    "resnet20": ("cifarb.models.resnet_cifar", "resnet20"),
    "resnet32": ("cifarb.models.resnet_cifar", "resnet32"),
    "resnet44": ("cifarb.models.resnet_cifar", "resnet44"),
    "resnet56": ("cifarb.models.resnet_cifar", "resnet56"),
    "resnet110": ("cifarb.models.resnet_cifar", "resnet110"),
    "resnet18": ("cifarb.models.resnet18", "resnet18"),
    "wrn28_10": ("cifarb.models.wrn", "wrn28_10"),
    "fastnet": ("cifarb.models.fastnet", "fastnet"),
    "resnet18_imagenet": ("cifarb.models.imagenet", "resnet18_imagenet"),
    "resnet50_imagenet": ("cifarb.models.imagenet", "resnet50_imagenet"),
    # the chenyaofo/pytorch-cifar-models family, in its parameter names (zoo cards: assets/chenyaofo_cards.toml)
    "resnet20_b": ("cifarb.models.resnet_b", "resnet20_b"),
    "resnet32_b": ("cifarb.models.resnet_b", "resnet32_b"),
    "resnet44_b": ("cifarb.models.resnet_b", "resnet44_b"),
    "resnet56_b": ("cifarb.models.resnet_b", "resnet56_b"),
    "vgg11_bn": ("cifarb.models.vgg_bn", "vgg11_bn"),
    "vgg13_bn": ("cifarb.models.vgg_bn", "vgg13_bn"),
    "vgg16_bn": ("cifarb.models.vgg_bn", "vgg16_bn"),
    "vgg19_bn": ("cifarb.models.vgg_bn", "vgg19_bn"),
    "mobilenetv2_x0_5": ("cifarb.models.mobilenetv2", "mobilenetv2_x0_5"),
    "mobilenetv2_x0_75": ("cifarb.models.mobilenetv2", "mobilenetv2_x0_75"),
    "mobilenetv2_x1_0": ("cifarb.models.mobilenetv2", "mobilenetv2_x1_0"),
    "mobilenetv2_x1_4": ("cifarb.models.mobilenetv2", "mobilenetv2_x1_4"),
    "shufflenetv2_x0_5": ("cifarb.models.shufflenetv2", "shufflenetv2_x0_5"),
    "shufflenetv2_x1_0": ("cifarb.models.shufflenetv2", "shufflenetv2_x1_0"),
    "shufflenetv2_x1_5": ("cifarb.models.shufflenetv2", "shufflenetv2_x1_5"),
    "shufflenetv2_x2_0": ("cifarb.models.shufflenetv2", "shufflenetv2_x2_0"),
    "repvgg_a0": ("cifarb.models.repvgg", "repvgg_a0"),
    "repvgg_a1": ("cifarb.models.repvgg", "repvgg_a1"),
    "repvgg_a2": ("cifarb.models.repvgg", "repvgg_a2"),
}


def build_model(arch: str, num_classes: int = 10, **options: Any) -> Any:
    """Instantiate architecture `arch` (a contract name) as an `nn.Module`."""
    from cifarb.errors import CifarbError

    if arch not in ARCHS:
        raise CifarbError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    module_name, factory = ARCHS[arch]
    return getattr(importlib.import_module(module_name), factory)(num_classes=num_classes, **options)
