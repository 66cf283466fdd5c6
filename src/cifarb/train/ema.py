"""WeightEMA: an exponential moving average of a model's weights, evaluated in place of the raw weights."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightEMA:
    """shadow <- decay * shadow + (1 - decay) * weights after every optimizer step from `start_step` on.

    Before `start_step` the shadow just copies the weights (averaging the early, fast-moving weights
    only drags it back). Buffers (BatchNorm running statistics) are not averaged: the shadow takes the
    live model's at evaluation time, so under DDP they are rank 0's, like the model's.
    """

    def __init__(self, model: nn.Module, decay: float, start_step: int = 0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.start_step = int(start_step)
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold in the weights after optimizer step `step` (0-based, counted over the whole run)."""
        live = [p.detach() for p in model.parameters()]
        mine = list(self.shadow.parameters())
        if step < self.start_step:
            torch._foreach_copy_(mine, live)
        else:
            torch._foreach_lerp_(mine, live, 1.0 - self.decay)
            self.updates += 1

    @torch.no_grad()
    def module(self, model: nn.Module) -> nn.Module:
        """The averaged model, with `model`'s current buffers, in eval mode."""
        for mine, live in zip(self.shadow.buffers(), model.buffers()):
            mine.copy_(live)
        return self.shadow.eval()

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load(self, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.shadow.load_state_dict(weights)
        self.updates = int(state.get("updates", 0))
