"""Experiment trackers (`train`/`flow train --log tensorboard,mlflow,wandb`): mirror metrics.jsonl and the final result.

Each backend is an optional extra and is imported only when asked for. All of them write locally:
TensorBoard event files in RUNDIR/tensorboard/; MLflow's local file store in RUNDIR/mlruns/ (unless
MLFLOW_TRACKING_URI names another store); Weights & Biases in offline mode under RUNDIR/wandb/
(WANDB_MODE=online opts in to syncing). A resumed run continues the same MLflow and wandb runs (their
ids are kept in RUNDIR/trackers.json). metrics.jsonl stays the record; trackers are a mirror of it.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifarb.errors import CifarbError, UsageError
from cifarb.metrics import catalog

TRACKERS = ("tensorboard", "mlflow", "wandb")
EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
IDS_FILE = "trackers.json"
# scalar keys of a result mirrored as final metrics (as stored: fractions, the p-value as is)
RESULT_KEYS = catalog.KEYS


def parse_log(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Tracker names from `--log a,b` (or a list); UsageError naming the unknown one."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(x.strip().lower() for x in items if x.strip()))
    bad = [n for n in names if n not in TRACKERS]
    if bad:
        from cifarb.errors import did_you_mean

        raise UsageError(f"--log {bad[0]!r} is not a tracker{did_you_mean(bad[0], TRACKERS)}; choose from "
                         f"{', '.join(TRACKERS)} (comma-separated)")
    return names


_MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_installed(names: Iterable[str]) -> None:
    """CifarbError naming the extra to install, before anything is written, for a tracker that is missing."""
    import importlib.util

    for n in names:
        if importlib.util.find_spec(_MODULES[n]) is None:
            raise _missing(n, ImportError(name=_MODULES[n]))


def _missing(name: str, exc: ImportError) -> CifarbError:
    return CifarbError(f"--log {name} needs the {name} package ({exc.name or exc}); "
                       f"pip install 'cifarb[{EXTRAS[name]}]', or drop --log {name}")


def _scalars(record: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if k not in ("event", "epoch") and isinstance(v, int | float) and not isinstance(v, bool)}


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat(v, key + "."))
        else:
            out[key] = str(v)[:500]  # MLflow caps parameter values
    return out


def result_scalars(result: Mapping[str, Any]) -> dict[str, float]:
    """{"<dataset>/<metric>": value} for the scalar metrics of a result (undefined ones left out)."""
    ds = str(result.get("dataset", "eval"))
    return {f"{ds}/{k}": float(result[k]) for k in RESULT_KEYS if isinstance(result.get(k), int | float)}


class _TensorBoard:
    def __init__(self, rundir: Path, name: str, config: Mapping[str, Any], ids: dict[str, str]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise _missing("tensorboard", exc) from None
        self.writer = SummaryWriter(log_dir=str(rundir / "tensorboard"), flush_secs=5)
        self.writer.add_text("config", "```\n" + json.dumps(dict(config), indent=2, default=str) + "\n```")

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        step = int(record.get("epoch", 0))
        for k, v in _scalars(record).items():
            self.writer.add_scalar(f"epoch/{k}", v, step)
        self.writer.flush()

    def log_result(self, result: Mapping[str, Any], step: int) -> None:
        for k, v in result_scalars(result).items():
            self.writer.add_scalar(f"eval/{k}", v, step)
        self.writer.flush()

    def log_summary(self, values: Mapping[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"final/{k}", v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, rundir: Path, name: str, config: Mapping[str, Any], ids: dict[str, str]) -> None:
        try:
            import mlflow
        except ImportError as exc:
            raise _missing("mlflow", exc) from None
        self.mlflow = mlflow
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # the local file store, which MLflow 3 keeps behind an opt-in
            uri = (rundir / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "cifarb"))
        run_id = ids.get("mlflow")
        self.run = mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name=name)
        ids["mlflow"] = self.run.info.run_id
        if not run_id:
            mlflow.log_params(_flat(config))
        self.uri = uri

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        self.mlflow.log_metrics(_scalars(record), step=int(record.get("epoch", 0)))

    def log_result(self, result: Mapping[str, Any], step: int) -> None:
        self.mlflow.log_metrics({k.replace("/", "."): v for k, v in result_scalars(result).items()}, step=step)
        self.mlflow.log_dict(dict(result), f"eval/{result.get('dataset', 'eval')}.json")

    def log_summary(self, values: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics({f"final.{k}": v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class _Wandb:
    def __init__(self, rundir: Path, name: str, config: Mapping[str, Any], ids: dict[str, str]) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise _missing("wandb", exc) from None
        self.wandb = wandb
        mode = os.environ.get("WANDB_MODE", "offline")  # never phones home unless asked to
        run_id = ids.get("wandb")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "cifarb"), name=name, dir=str(rundir),
                              mode=mode, config=dict(config), id=run_id, resume="allow" if run_id else None,
                              reinit="create_new", settings=wandb.Settings(silent=True))
        ids["wandb"] = self.run.id

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        self.run.log(_scalars(record), step=int(record.get("epoch", 0)))

    def log_result(self, result: Mapping[str, Any], step: int) -> None:
        self.run.summary.update(result_scalars(result))

    def log_summary(self, values: Mapping[str, float], step: int) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in values.items()})

    def close(self) -> None:
        self.run.finish()
        self.wandb.teardown()  # waits for wandb's service to flush the offline run file


_BACKENDS = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _Wandb}


class Trackers:
    """The trackers of one run; every call goes to each. Closed at the end, or when the process exits."""

    def __init__(self, backends: list[Any]) -> None:
        self.backends = backends
        self.last_epoch = 0
        self._finalizer = weakref.finalize(self, Trackers._close_all, list(backends))

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        self.last_epoch = int(record.get("epoch", self.last_epoch))
        for b in self.backends:
            b.log_epoch(record)

    def log_result(self, result: Mapping[str, Any] | None) -> None:
        if result:
            for b in self.backends:
                b.log_result(result, self.last_epoch)

    def log_summary(self, values: Mapping[str, Any]) -> None:
        """Final scalars of a run without a result JSON (a flow: last and best test bits/dim), as final/<key>,
        at step values["epoch"] when given (a resume with nothing left to train logs no epoch first)."""
        scalars = {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        step = int(values.get("epoch", self.last_epoch))
        if scalars:
            for b in self.backends:
                b.log_summary(scalars, step)

    @staticmethod
    def _close_all(backends: list[Any]) -> None:
        for b in backends:
            try:
                b.close()
            except Exception:  # noqa: BLE001 - one tracker failing to close must not hide the others
                pass

    def close(self) -> None:
        self._finalizer()


@dataclass(frozen=True)
class TrackerSpec:
    """The trackers a run mirrors to, opened once its run directory exists (how `flow train` gets them:
    the flows layer sits below train and does not import this module)."""

    names: tuple[str, ...]

    def open(self, rundir: Path | str, config: Mapping[str, Any] | None = None, name: str | None = None) -> Trackers:
        return open_trackers(self.names, rundir, name, config)


def open_trackers(names: Iterable[str], rundir: Path | str, name: str | None = None,
                  config: Mapping[str, Any] | None = None) -> Trackers:
    """Start the named trackers for the run in `rundir` (none: a Trackers that does nothing)."""
    names = parse_log(list(names))
    rundir = Path(rundir)
    ids_path = rundir / IDS_FILE
    ids: dict[str, str] = {}
    if ids_path.is_file():
        try:
            ids = {str(k): str(v) for k, v in json.loads(ids_path.read_text(encoding="utf-8")).items()}
        except (OSError, ValueError, AttributeError):
            ids = {}
    backends = [_BACKENDS[n](rundir, name or rundir.name, dict(config or {}), ids) for n in names]
    if ids:
        from cifarb._atomic import atomic_write_json

        atomic_write_json(ids_path, ids)
    return Trackers(backends)
