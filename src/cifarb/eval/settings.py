"""EvalSettings: how one evaluation is computed (statistics, TTA, batching), passed around as one value.

The statistical fields are what a result records under `settings` (cifarb/schemas/result.schema.json),
so `EvalSettings.from_settings(result["settings"])` repeats an evaluation's statistics exactly. The
public functions still take the old keywords (`bootstrap=`, `seed=`, ...); `EvalSettings.build` turns
them into one object in one place. No torch, no numpy: the `metrics` command uses it too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EvalSettings", "METRIC_FIELDS"]

# the fields compute_metrics / accuracy_only / corruption_metrics take, and a result's `settings` records
METRIC_FIELDS = ("bootstrap", "seed", "min_cell_size", "min_cell_size_worst", "permutations")


@dataclass(frozen=True)
class EvalSettings:
    """Every setting of an evaluation except what is evaluated (model, dataset, data) and where it is written.

    bootstrap, seed, min_cell_size, min_cell_size_worst, permutations: the statistics (docs/metrics.md;
        bootstrap=0 turns CIs and the permutation test off). A training run's final evaluation uses
        `seed=derive_seed(run seed, "eval-ci")` (cifarb.seeds), never the training seed itself.
    subgroup_names: CIFAR-B subgroup names to report (None: the bundled ones).
    tta: test-time augmentation, "none" or "flip" (cifarb.eval.tta), recorded as settings.tta.
    batch_size, device, progress, save_logits: how inference runs; they do not change the numbers.
    """

    bootstrap: int = 1000
    seed: int = 0
    min_cell_size: int = 1
    min_cell_size_worst: int = 10
    permutations: int = 999
    subgroup_names: tuple[str, ...] | None = None
    tta: str = "none"
    batch_size: int = 256
    device: str | None = None
    progress: bool = True
    save_logits: bool = False

    def __post_init__(self) -> None:
        if self.subgroup_names is not None and not isinstance(self.subgroup_names, tuple):
            # a list from a caller or a JSON file: frozen means hashable, so hold a tuple
            object.__setattr__(self, "subgroup_names", tuple(str(s) for s in self.subgroup_names))

    @classmethod
    def build(cls, settings: EvalSettings | None = None, /, **options: Any) -> EvalSettings:
        """`settings` (default: the defaults) with `options` (field names, e.g. `bootstrap=200`) replaced.

        The one place loose keywords become settings; an unknown name is a TypeError, as it would be
        for a function signature.
        """
        base = cls() if settings is None else settings
        if not isinstance(base, EvalSettings):
            raise TypeError(f"settings must be an EvalSettings, not {type(base).__name__}")
        if not options:
            return base
        unknown = sorted(set(options) - _FIELDS)
        if unknown:
            raise TypeError(f"unknown evaluation setting(s): {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
        return dataclasses.replace(base, **options)

    @classmethod
    def from_settings(cls, recorded: Mapping[str, Any], **options: Any) -> EvalSettings:
        """The settings a result's `settings` block records (statistics, subgroup names, TTA), plus `options`."""
        known = {k: recorded[k] for k in (*METRIC_FIELDS, "subgroup_names", "tta") if k in recorded}
        return cls.build(cls(**known), **options)

    def metric_options(self) -> dict[str, Any]:
        """The keywords of compute_metrics / accuracy_only / corruption_metrics (they check the values)."""
        return {k: getattr(self, k) for k in METRIC_FIELDS}

    def to_settings(self) -> dict[str, Any]:
        """What a result made with these settings records under `settings` for them (the statistics and TTA)."""
        return {**{k: int(v) for k, v in self.metric_options().items()}, "tta": self.tta}

    @property
    def subgroups(self) -> Sequence[str] | None:
        """subgroup_names as the readers take it (a list, or None)."""
        return None if self.subgroup_names is None else list(self.subgroup_names)


_FIELDS = frozenset(f.name for f in dataclasses.fields(EvalSettings))
