"""Subgroup metrics (MacroStd, its noise floor, worst cell/subgroup, bootstrap CIs) on plain arrays; numpy only."""

from cifarb.metrics._engine import MetricsInputError
from cifarb.metrics.core import (
    CI_METRICS,
    SubgroupMetrics,
    accuracy_only,
    compute_metrics,
    metrics_from_counts,
)
from cifarb.metrics.corruptions import corruption_metrics
from cifarb.metrics.frame import AccuracyMetrics, CorruptionMetrics, PairedComparison
from cifarb.metrics.paired import paired_bootstrap
from cifarb.metrics.result import (
    PAPER18,
    SCHEMA_VERSION,
    ResultValidationError,
    build_result,
    combine_corruptions,
    load_schema,
    validate_result,
)

__all__ = [
    "CI_METRICS",
    "AccuracyMetrics",
    "CorruptionMetrics",
    "PairedComparison",
    "PAPER18",
    "SCHEMA_VERSION",
    "MetricsInputError",
    "ResultValidationError",
    "SubgroupMetrics",
    "accuracy_only",
    "build_result",
    "combine_corruptions",
    "compute_metrics",
    "corruption_metrics",
    "load_schema",
    "metrics_from_counts",
    "paired_bootstrap",
    "validate_result",
]
