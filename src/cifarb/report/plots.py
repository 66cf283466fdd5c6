"""Notebook plots of one evaluation, drawn on a matplotlib `Axes` you give (or a new one) and returned.

Each function takes the metrics object (`Evaluation`, `SubgroupMetrics`) or a result dict, draws on
`ax` (ax=None creates a figure through pyplot) and returns the Axes, so plots compose into subplots:

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    cifarb.plot_cells(ev, ax=a); cifarb.plot_subgroups(ev, ax=b)

The report's PNG figures stay in `report/figures.py`; these are thin wrappers over its cell matrix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def as_result(obj: Any) -> Mapping[str, Any]:
    """The result dict of an Evaluation, a SubgroupMetrics or a result dict."""
    from cifarb.eval.evaluation import Evaluation
    from cifarb.metrics.core import SubgroupMetrics

    if isinstance(obj, Evaluation):
        return obj.result
    if isinstance(obj, SubgroupMetrics):
        return obj.to_dict()
    if isinstance(obj, Mapping):
        return obj
    raise TypeError(f"expected an Evaluation, SubgroupMetrics or result dict, got {type(obj).__name__}")


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=size)
    return ax


def plot_cells(obj: Any, ax: Axes | None = None, *, annotate: bool | None = None, title: str | None = None) -> Axes:
    """Class x subgroup accuracy heatmap (empty cells grey); annotations with accuracy % and n when small."""
    from cifarb.report.figures import _cmap, cell_matrix

    result = as_result(obj)
    classes, subgroups, acc, n = cell_matrix(result)
    ax = _axes(ax, (max(6.0, 0.85 * len(subgroups) + 2.5), max(3.5, 0.42 * len(classes) + 1.5)))
    im = ax.imshow(np.ma.masked_invalid(acc), cmap=_cmap(), vmin=0.0, vmax=1.0, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(range(len(subgroups)), subgroups, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("subgroup")
    ax.set_ylabel("class")
    if annotate if annotate is not None else len(classes) * len(subgroups) <= 300:
        for i in range(len(classes)):
            for j in range(len(subgroups)):
                if not math.isnan(acc[i, j]):
                    ax.text(j, i, f"{100 * acc[i, j]:.0f}\nn={n[i, j]}", ha="center", va="center", fontsize=7,
                            color="white" if acc[i, j] < 0.45 else "black", linespacing=0.95)
    ax.figure.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="cell accuracy")
    head = title or f"{result.get('dataset', '')}: class x subgroup accuracy"
    if result.get("macro_std") is not None:
        head += f"\nMacroStd {100 * result['macro_std']:.2f}%"
        if result.get("macro_std_excess") is not None:
            head += f" (excess {100 * result['macro_std_excess']:+.2f} pp)"
    ax.set_title(head, fontsize=10)
    return ax


def _bars(frame: Any, column: str, ax: Axes, title: str) -> Axes:
    acc = frame["accuracy"].to_numpy(dtype=float)
    lo = frame["ci_lo"].to_numpy(dtype=float)
    hi = frame["ci_hi"].to_numpy(dtype=float)
    x = np.arange(len(frame))
    err = np.vstack([np.where(np.isnan(lo), 0, acc - lo), np.where(np.isnan(hi), 0, hi - acc)]) * 100
    ax.bar(x, 100 * np.nan_to_num(acc), yerr=err if np.isfinite(lo).any() else None, capsize=3,
           color="#4c72b0")
    ax.set_xticks(x, [str(v) for v in frame[column]], rotation=30 if len(frame) <= 30 else 90, ha="right",
                  fontsize=8 if len(frame) > 30 else 10)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    return ax


def plot_subgroups(obj: Any, ax: Axes | None = None, *, title: str | None = None) -> Axes:
    """Pooled accuracy per subgroup with its 95% CI as error bars (when the result has CIs)."""
    from cifarb.metrics.display import group_frame

    result = as_result(obj)
    frame = group_frame(result, "subgroup")
    ax = _axes(ax, (max(5.0, 0.5 * len(frame) + 2), 3.5))
    return _bars(frame, "subgroup", ax, title or f"{result.get('dataset', '')}: accuracy per subgroup")


def plot_classes(obj: Any, ax: Axes | None = None, *, title: str | None = None) -> Axes:
    """Accuracy per class with its 95% CI as error bars (when the result has CIs)."""
    from cifarb.metrics.display import group_frame

    result = as_result(obj)
    frame = group_frame(result, "class")
    ax = _axes(ax, (max(5.0, 0.3 * len(frame) + 2), 3.5))
    return _bars(frame, "class", ax, title or f"{result.get('dataset', '')}: accuracy per class")
