"""A streaming subgroup-metrics accumulator for validation loops (torchmetrics style, numpy state).

Every contract metric depends on predictions only through the (class, subgroup) cell counts `n` and
`k` (see `_engine`), so the state is two integer (C, G) matrices: `update()` adds a batch's counts,
`compute()` runs `metrics_from_counts` on them, and accumulators merge by summing, which is all that
DDP needs (all-reduce the two matrices with SUM):

    acc = SubgroupAccumulator(n_classes=10, n_subgroups=8)
    for x, y, g in loader:
        acc.update(model(x), y, g)           # logits (N, C) or class ids (N,); tensors or arrays
    if distributed:
        state = torch.from_numpy(acc.state()).to(device)
        torch.distributed.all_reduce(state)  # SUM
        acc.load_state(state.cpu().numpy())
    metrics = acc.compute(bootstrap=1000)    # == compute_metrics on all samples seen

No torch import here: tensors are converted with `.detach().cpu().numpy()` when they have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cifarb.metrics import _engine as E
from cifarb.metrics._engine import MetricsInputError
from cifarb.metrics.core import PERMUTATIONS, SubgroupMetrics, _names, metrics_from_counts


def _numpy(values: Any) -> np.ndarray:
    """A numpy view of an array-like or a (possibly CUDA, grad-tracking) tensor."""
    if hasattr(values, "detach"):
        values = values.detach()
    if hasattr(values, "cpu"):
        values = values.cpu()
    if hasattr(values, "numpy"):
        values = values.numpy()
    return np.asarray(values)


class SubgroupAccumulator:
    """Cell counts accumulated over batches; `compute()` gives the same metrics as `compute_metrics`."""

    def __init__(self, n_classes: int, n_subgroups: int, *, class_names: Sequence[str] | None = None,
                 subgroup_names: Sequence[str] | None = None) -> None:
        if int(n_classes) < 1 or int(n_subgroups) < 1:
            raise MetricsInputError(f"need n_classes >= 1 and n_subgroups >= 1, got {n_classes}, {n_subgroups}")
        self.n_classes, self.n_subgroups = int(n_classes), int(n_subgroups)
        self.class_names = _names(class_names, self.n_classes, "class")
        self.subgroup_names = _names(subgroup_names, self.n_subgroups, "subgroup")
        self.reset()

    def reset(self) -> None:
        """Forget every sample (e.g. at the start of a validation epoch)."""
        self.n = np.zeros((self.n_classes, self.n_subgroups), dtype=np.int64)
        self.k = np.zeros_like(self.n)

    @property
    def n_samples(self) -> int:
        return int(self.n.sum())

    def update(self, preds: Any, labels: Any, groups: Any) -> None:
        """Add one batch: `preds` are class ids (N,) or scores/logits (N, C), argmax-ed here."""
        p = _numpy(preds)
        if p.ndim == 2:
            if p.shape[1] != self.n_classes:
                raise MetricsInputError(f"scores have {p.shape[1]} columns but there are {self.n_classes} classes")
            p = p.argmax(axis=1)
        y = E.as_index_array(_numpy(labels), "labels")
        p = E.as_index_array(p, "predictions")
        g = E.as_index_array(_numpy(groups), "subgroups")
        if not (p.shape == y.shape == g.shape):
            raise MetricsInputError(f"one prediction, label and subgroup per sample; got {p.size}, {y.size}, {g.size}")
        if y.size == 0:
            return
        for arr, limit, what in ((y, self.n_classes, "labels"), (p, self.n_classes, "predictions"),
                                 (g, self.n_subgroups, "subgroups")):
            if arr.max() >= limit:
                raise MetricsInputError(f"{what} contain id {int(arr.max())} but there are only {limit}")
        n, k = E.cell_counts(y, y == p, g, self.n_classes, self.n_subgroups)
        self.n += n
        self.k += k

    def merge(self, other: SubgroupAccumulator) -> SubgroupAccumulator:
        """Add another accumulator's counts (same classes and subgroups) into this one; returns self."""
        if other.n.shape != self.n.shape or other.subgroup_names != self.subgroup_names:
            raise MetricsInputError("accumulators with different classes or subgroups cannot be merged")
        self.n += other.n
        self.k += other.k
        return self

    def __add__(self, other: SubgroupAccumulator) -> SubgroupAccumulator:
        out = SubgroupAccumulator(self.n_classes, self.n_subgroups, class_names=self.class_names,
                                  subgroup_names=self.subgroup_names)
        return out.merge(self).merge(other)

    def state(self) -> np.ndarray:
        """The state as one (2, C, G) int64 array (n, k): all-reduce it with SUM across ranks."""
        return np.stack([self.n, self.k])

    def load_state(self, state: Any) -> None:
        """Replace the counts with a (2, C, G) state, e.g. after an all-reduce."""
        arr = np.asarray(_numpy(state), dtype=np.int64)
        if arr.shape != (2, self.n_classes, self.n_subgroups):
            raise MetricsInputError(f"state must have shape (2, {self.n_classes}, {self.n_subgroups}), got {arr.shape}")
        self.n, self.k = arr[0].copy(), arr[1].copy()

    def compute(self, *, bootstrap: int = 1000, seed: int = 0, min_cell_size: int = 1, min_cell_size_worst: int = 10,
                null_draws: int = 1000, permutations: int = PERMUTATIONS) -> SubgroupMetrics:
        """All contract metrics of the samples seen so far (the same as `compute_metrics` on them)."""
        return metrics_from_counts(self.n, self.k, class_names=self.class_names, subgroup_names=self.subgroup_names,
                                   bootstrap=bootstrap, seed=seed, min_cell_size=min_cell_size,
                                   min_cell_size_worst=min_cell_size_worst, null_draws=null_draws,
                                   permutations=permutations)

    def __repr__(self) -> str:
        return (f"<SubgroupAccumulator {self.n_classes} classes x {self.n_subgroups} subgroups, "
                f"{self.n_samples:,} samples, accuracy "
                f"{(100 * self.k.sum() / self.n_samples if self.n_samples else float('nan')):.2f} %>")
