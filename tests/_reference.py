"""Independent references the tests compare cifarb with: plain Python loops, no code shared with cifarb.metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence


def _ints(values: Sequence[int]) -> list[int]:
    return [int(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]


def plain_accuracy(labels: Sequence[int], preds: Sequence[int]) -> float:
    labels, preds = _ints(labels), _ints(preds)
    return sum(p == y for p, y in zip(preds, labels, strict=True)) / len(labels)


def plain_macro_std(labels: Sequence[int], preds: Sequence[int], groups: Sequence[int]) -> float:
    """MacroStd by the paper's definition: per class present, the standard deviation of its (class,
    subgroup) cells' accuracies, each cell weighted by its share of the class; then the mean over classes."""
    labels, preds, groups = _ints(labels), _ints(preds), _ints(groups)
    stds = []
    for c in sorted(set(labels)):
        cells: dict[int, list[int]] = {}  # subgroup -> [images, correct]
        for y, p, g in zip(labels, preds, groups, strict=True):
            if y == c:
                cell = cells.setdefault(g, [0, 0])
                cell[0] += 1
                cell[1] += p == y
        n_c = sum(n for n, _ in cells.values())
        mean = sum(k for _, k in cells.values()) / n_c
        stds.append(math.sqrt(sum(n / n_c * (k / n - mean) ** 2 for n, k in cells.values())))
    return sum(stds) / len(stds)
