"""DevicePath: everything the training loop does differently on CPU and CUDA (autocast, compile, layout, transfers).

One object answers "how does this run execute": which autocast dtype (bf16 on CPU and on CUDA with bf16,
fp16 + GradScaler on older GPUs), whether the forward module is `torch.compile`d, whether inputs and
weights are channels_last, and how host tensors reach the device (pinned memory and non-blocking copies
on CUDA; plain tensors on CPU, where pinning needs a CUDA runtime and a copy is a no-op). None of it
changes what a run computes, only how, so all of it may change on `--resume`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class DevicePath:
    device: torch.device
    amp: bool = False
    compile: bool = False
    channels_last: bool = True

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None when AMP is off."""
        if not self.amp:
            return None
        if self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return self.amp_dtype == torch.float16

    @property
    def pinned(self) -> bool:
        """Host staging buffers are page-locked (and copies asynchronous) only for a CUDA device."""
        return self.device.type == "cuda"

    def autocast(self) -> Any:
        dtype = self.amp_dtype
        if dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        # an always-present scaler keeps checkpoints uniform; disabled it is a pass-through
        return torch.amp.GradScaler("cuda", enabled=self.needs_grad_scaler)

    def place_module(self, model: nn.Module) -> nn.Module:
        """Move the parameters to the device, in the run's memory format (in place; returns `model`)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def compiled(self, module: nn.Module) -> nn.Module:
        """The module to call in the training step: `torch.compile(module)` when compile is on.

        Weights stay shared with `module`, so checkpoints hold plain (`_orig_mod.`-free) state dicts and
        a run saved compiled loads uncompiled, and the reverse.
        """
        if not self.compile:
            return module
        return torch.compile(module)  # type: ignore[return-value]

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A host tensor on the device: asynchronous from pinned memory on CUDA, unchanged on CPU."""
        if t.device == self.device:
            return t
        if self.pinned and t.device.type == "cpu" and not t.is_pinned():
            t = t.pin_memory()
        return t.to(self.device, non_blocking=self.pinned)

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """A 4-d float batch in the run's memory format."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def synchronize(self) -> None:
        """Wait for queued device work (timing); a no-op on CPU."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def describe(self) -> dict[str, Any]:
        """The manifest's record of how the run executes."""
        dtype = self.amp_dtype
        return {
            "device": str(self.device), "amp": self.amp,
            "amp_dtype": str(dtype).replace("torch.", "") if dtype is not None else None,
            "compile": self.compile, "channels_last": self.channels_last, "pinned_transfers": self.pinned,
        }
