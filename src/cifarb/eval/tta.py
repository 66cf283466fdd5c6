"""Test-time augmentation: a wrapper module that averages a classifier's logits over mirrored views."""

from __future__ import annotations

from typing import Any

TTA_MODES = ("none", "flip")


def with_tta(module: Any, mode: str) -> Any:
    """`module` itself for "none"; for "flip", a module returning the mean logits of x and x mirrored.

    Mirroring is the one label-preserving view every CIFAR classifier is trained on (airbench's TTA
    level 1). Both views go through one forward pass of twice the batch, so BatchNorm in eval mode and
    every other per-image layer see exactly what they would see one view at a time.
    """
    import torch
    from torch import nn

    if mode == "none":
        return module
    if mode != "flip":
        from cifarb.errors import UsageError

        raise UsageError(f"unknown test-time augmentation {mode!r}; choose one of: {', '.join(TTA_MODES)}")

    class FlipTTA(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            both = torch.cat([x, x.flip(-1)])
            if x.is_contiguous(memory_format=torch.channels_last):
                both = both.contiguous(memory_format=torch.channels_last)
            out = self.inner(both)
            return 0.5 * (out[:n] + out[n:])

    return FlipTTA(module)
