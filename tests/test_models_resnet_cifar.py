"""Tests for the CIFAR option-A ResNets: parameter counts, forward/backward, published checkpoint loading."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cifarb.errors import CifarbError
from cifarb.models import build_model, resnet_cifar

DEPTHS = [20, 32, 44, 56, 110]


def _expected_params(depth: int, num_classes: int) -> int:
    """Closed-form count: stem conv+BN, 3 stages of n blocks (two 3x3 convs + two BNs each), linear head."""
    n = (depth - 2) // 6
    total = 3 * 16 * 9 + 2 * 16
    c_in = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += 9 * c_in * c + 9 * c * c + 4 * c
            c_in = c
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize("depth", DEPTHS)
def test_parameter_counts(depth):
    model = build_model(f"resnet{depth}")
    n = sum(p.numel() for p in model.parameters())
    assert n == _expected_params(depth, 10)
    # The published sizes (He et al. 2016, table 6).
    published = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6}[depth]
    assert abs(n - published) / published < 0.02
    exact = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}[depth]
    assert n == exact
    assert sum(p.numel() for p in build_model(f"resnet{depth}", 100).parameters()) == _expected_params(
        depth, 100
    )


def test_forward_backward_and_names():
    torch.manual_seed(0)
    model = resnet_cifar.resnet20(num_classes=7)
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 7)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    names = set(model.state_dict())
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer3.2.bn2.bias",
        "linear.weight",
    } <= names
    # option A: no shortcut parameters anywhere
    assert not any("shortcut" in k for k in names)


def test_option_a_shortcut_is_strided_identity_with_zero_padding():
    block = resnet_cifar.BasicBlock(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    sc = block.shortcut(x)
    assert sc.shape == (2, 32, 4, 4)
    assert torch.equal(sc[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(sc[:, :8]) == 0 and torch.count_nonzero(sc[:, 24:]) == 0


def test_unknown_option_is_a_clear_error():
    with pytest.raises(CifarbError, match="resnet20"):
        build_model("resnet20", width=2)


def test_published_resnet20_loads_strictly_and_classifies_real_images(shared_models, shared_data):
    ckpt = torch.load(shared_models / "resnet20-12fca82f.th", map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    model = resnet_cifar.resnet20()
    model.load_state_dict(state, strict=True)
    model.eval()
    with open(shared_data / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        batch = pickle.load(fh, encoding="latin1")
    images = torch.from_numpy(np.asarray(batch["data"][:200], dtype=np.uint8)).view(-1, 3, 32, 32)
    labels = np.asarray(batch["labels"][:200])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = model((images.float() / 255 - mean) / std).argmax(1).numpy()
    # Reported full-test accuracy is 91.78 %; 200 images leave some sampling noise.
    assert (pred == labels).mean() > 0.85
