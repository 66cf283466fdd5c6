"""`cifarb.train.train(config) -> Path`: the Python entry point behind `cifarb train`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cifarb.train.config import TrainConfig, build_config


def train(config: TrainConfig | dict[str, Any] | None = None, /, **overrides: Any) -> Path:
    """Train (or, with `resume=True`, continue) one run; returns its run directory.

    `config` is a TrainConfig or a dict of its fields; keyword arguments override it, e.g.
    `train(dataset="cifar10", arch="fastnet", aug="standard", epochs=3, out="runs/x")`.
    Launched under `torchrun --nproc_per_node=N`, every process calls this and rank 0 writes the run.
    """
    from cifarb.train.engine import explicit_fields, run

    if config is None:
        cfg = TrainConfig()
    elif isinstance(config, TrainConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = build_config(config)
    else:
        raise TypeError(f"config must be a TrainConfig or a dict, not {type(config).__name__}")
    given = explicit_fields(cfg)
    if overrides:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise TypeError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        cfg = dataclasses.replace(cfg, **overrides)
        given |= set(overrides)
    return run(cfg, given).rundir
