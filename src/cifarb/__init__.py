"""cifarb: measure and reduce subgroup discrepancy (MacroStd) in image classifiers.

The entry points, for notebooks and scripts (docs/python-api.md)::

    import cifarb
    ev = cifarb.evaluate_predictions(preds, dataset="cifar10-b")      # `cifarb metrics`, no torch
    ev = cifarb.evaluate(net, dataset="cifar10-b", mean=..., std=...)  # `cifarb eval`, any nn.Module
    ev.summary(); ev.by_subgroup; cifarb.plot_cells(ev)
    m = cifarb.compute_metrics(labels, preds, subgroups)               # any dataset, plain arrays
    table = cifarb.reference.score()                                   # the 30 reference models

Everything is imported lazily, on first use: `import cifarb` is cheap and never imports torch.
Layers (imports point down): cli -> study/report -> train/eval -> augment/flows/models -> metrics -> data/runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute; "" for the module itself); resolved on first access by __getattr__
_LAZY: dict[str, tuple[str, str]] = {
    # metrics on arrays and cell counts (numpy only)
    "compute_metrics": ("cifarb.metrics.core", "compute_metrics"),
    "metrics_from_counts": ("cifarb.metrics.core", "metrics_from_counts"),
    "SubgroupMetrics": ("cifarb.metrics.core", "SubgroupMetrics"),
    "SubgroupAccumulator": ("cifarb.metrics.streaming", "SubgroupAccumulator"),
    "Evaluation": ("cifarb.eval.evaluation", "Evaluation"),
    "validate_result": ("cifarb.metrics.result", "validate_result"),
    # the commands as functions
    "evaluate_predictions": ("cifarb.api", "evaluate_predictions"),
    "evaluate": ("cifarb.api", "evaluate"),
    "load_model": ("cifarb.api", "load_model"),
    "compare": ("cifarb.api", "compare"),
    # data
    "load_cifar_b": ("cifarb.data.cifar_b", "load_cifar_b"),
    "load_cifar": ("cifarb.data.readers", "load_cifar"),
    "load_demo_sample": ("cifarb.data.sample", "load_demo_sample"),
    "load_superclasses": ("cifarb.data.superclasses", "load_superclasses"),
    "read_groups": ("cifarb.data.groups", "read_groups"),
    # plots on a matplotlib Axes
    "plot_cells": ("cifarb.report.plots", "plot_cells"),
    "plot_subgroups": ("cifarb.report.plots", "plot_subgroups"),
    "plot_classes": ("cifarb.report.plots", "plot_classes"),
    "CifarbError": ("cifarb.errors", "CifarbError"),
    # the 30 reference models (`cifarb reference`): cifarb.reference.score(...), cifarb.load_reference()
    "reference": ("cifarb.reference", ""),
    "load_reference": ("cifarb.reference.bundle", "load_reference"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cifarb' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
