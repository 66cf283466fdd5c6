"""Test-time augmentation: a wrapper module that averages a classifier's logits over mirrored (and shifted) views."""

from __future__ import annotations

from typing import Any

# the same as cifarb.train.hparams.TTA_MODES (kept torch-free there); a test checks they agree
TTA_MODES = ("none", "flip", "flip+translate")


def with_tta(module: Any, mode: str) -> Any:
    """`module` itself for "none"; otherwise a module returning the mean logits over the mode's views.

    "flip": x and x mirrored (airbench's TTA level 1). Mirroring is the one label-preserving view every
    CIFAR classifier is trained on. Both views go through one forward pass of twice the batch, so
    BatchNorm in eval mode and every other per-image layer see exactly what they would see one view at
    a time.

    "flip+translate": airbench's level 2, 6 views (3x the forward cost of "flip"): 1/2 x the flip logits
    of x, plus 1/4 x those of x shifted by one pixel down-right and by one pixel up-left (reflect
    padding), the shifts the training crops make. The three flip pairs run one after another, so peak
    memory stays that of "flip".
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    if mode == "none":
        return module
    if mode not in TTA_MODES:
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

    class FlipTranslateTTA(FlipTTA):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2:]
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
            # padded[..., :h, :w] is x moved one pixel down-right; padded[..., 2:, 2:] one pixel up-left
            shifted = (padded[..., :h, :w], padded[..., 2:, 2:])
            out = 0.5 * super().forward(x)
            for view in shifted:
                out = out + 0.25 * super().forward(view)
            return out

    return FlipTTA(module) if mode == "flip" else FlipTranslateTTA(module)
