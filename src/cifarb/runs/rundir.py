"""One run directory: the files a training, flow or evaluation run leaves behind.

    RUNDIR/manifest.json        config, seed, versions, input sha256s, git commit, host
    RUNDIR/metrics.jsonl        one JSON object per line, "event": "epoch" | "eval"
    RUNDIR/checkpoints/         last.pt (+ best.pt), written atomically
    RUNDIR/eval/<dataset>.json  result JSON per evaluated dataset
    RUNDIR/predictions/<dataset>.parquet

Nothing is written until `create()`: callers validate all arguments first, so a failed start leaves
no directory behind. torch and pandas are imported only by the methods that need them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from cifarb import __version__
from cifarb._atomic import atomic_path, atomic_write_json, os_error_message
from cifarb._threads import threads_info
from cifarb.errors import CifarbError, UsageError
from cifarb.runs.lock import FolderLock

CONVERT_HINT = "cifarb convert-checkpoint --trust-this-file"


def is_plain_name(name: Any) -> bool:
    """True for one plain path component: no `/`, `\\`, `..`, leading dot or control character."""
    ok = isinstance(name, str) and 0 < len(name) <= 200 and name not in (".", "..")
    return ok and not name.startswith(".") and not any(c in name for c in "/\\") and name.isprintable()


def check_name(name: Any, what: str) -> str:
    """`name` if `is_plain_name`, else a UsageError: names become folder names below ./runs/ or a study
    folder and must not escape it."""
    if not is_plain_name(name):
        raise UsageError(f"{what} {name!r} is not a plain name: use letters, digits, '-', '_' or '+' "
                         "(no '/', '..' or leading '.'); it becomes a folder name")
    return name


def default_run_name(arch: str, aug: str, seed: int, now: _dt.datetime | None = None) -> str:
    """`<timestamp>-<arch>-<aug>-s<seed>`, the default `--out` below ./runs/."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return check_name(f"{stamp}-{check_name(arch, 'name')}-{check_name(aug, 'name').replace('+', '_')}-s{seed}",
                      "run name")


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance_info() -> dict[str, Any]:
    """Versions, git commit and host: what every manifest records about how it was produced."""
    versions: dict[str, str | None] = {"cifarb": __version__, "python": sys.version.split()[0]}
    for mod in ("numpy", "torch", "torchvision"):
        # the installed distribution, imported or not (a run without torchvision transforms still
        # depends on which torchvision its models came from)
        m = sys.modules.get(mod)
        versions[mod] = getattr(m, "__version__", None) if m is not None else _installed_version(mod)
    return {
        "versions": versions,
        "git_commit": _git_commit(),
        "threads": threads_info(),
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv,
    }


class RunDir:
    """Paths and atomic I/O for one run directory."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    # --- paths -------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_path(self, name: str = "last.pt") -> Path:
        return self.checkpoints_dir / name

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def predictions_dir(self) -> Path:
        return self.path / "predictions"

    def eval_path(self, dataset: str) -> Path:
        return self.eval_dir / f"{dataset}.json"

    def predictions_path(self, dataset: str) -> Path:
        return self.predictions_dir / f"{dataset}.parquet"

    # --- lifecycle ---------------------------------------------------------------------------
    def check_can_start(self, resume: bool) -> None:
        """Validate the --out / --resume rules without writing anything.

        An absent or empty directory is fine; a non-empty one needs --resume (exit 2 otherwise);
        --resume needs a directory that holds a run; a file in the way is an error.
        """
        p = self.path
        if p.exists() and not p.is_dir():
            raise UsageError(f"--out {p} is a file, not a directory; choose a directory path")
        non_empty = not self.is_free()
        if resume:
            if not self.manifest_path.exists():
                raise UsageError(
                    f"--resume: {p} holds no run (no manifest.json); drop --resume to start a new run there"
                )
        elif non_empty:
            raise UsageError(
                f"--out {p} is not empty; pass --resume to continue the run in it, or choose another directory"
            )

    def create(self) -> RunDir:
        try:
            for sub in (self.path, self.checkpoints_dir):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CifarbError(os_error_message(self.path, exc)) from None
        return self

    def lock(self, what: str = "run directory") -> FolderLock:
        """The OS lock that makes this process the one writer of the run (see cifarb.runs.lock)."""
        return FolderLock(self.path, what)

    def _staging_prefix(self) -> str:
        return f".{self.path.absolute().name}.creating-"

    def create_with_manifest(self, manifest: dict[str, Any]) -> RunDir:
        """Create the run atomically: build manifest.json + checkpoints/ under a temporary name, then rename.

        A kill at any moment leaves either no run (an absent or still empty --out) or a complete, resumable
        one. Call with the run's lock held: leftovers of killed creators are removed first.
        """
        parent = self.path.absolute().parent
        self.clean_stale_staging()
        staging = parent / f"{self._staging_prefix()}{os.getpid()}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            (staging / "checkpoints").mkdir(parents=True)
            RunDir(staging).write_manifest(manifest)
            os.replace(staging, self.path)  # onto an absent or empty directory: rename(2) is atomic
        except CifarbError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise CifarbError(os_error_message(self.path, exc)) from None
        return self

    def clean_stale_staging(self) -> list[Path]:
        """Remove half-built copies of this run and temp files a kill left inside it (lock held)."""
        removed: list[Path] = []
        parent = self.path.absolute().parent
        if parent.is_dir():
            for p in parent.glob(f"{self._staging_prefix()}*"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        for folder in (self.path, self.checkpoints_dir, self.eval_dir, self.predictions_dir):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):  # atomic_path's temp names
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                        removed.append(tmp)
        return removed

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def is_free(self) -> bool:
        """True for an absent or empty directory: a new run may start there without --resume."""
        return not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))

    # --- manifest ----------------------------------------------------------------------------
    def write_manifest(self, manifest: dict[str, Any]) -> Path:
        return atomic_write_json(self.manifest_path, manifest)

    def read_manifest(self) -> dict[str, Any]:
        return _read_json(self.manifest_path)

    # --- metrics.jsonl -----------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line (must contain "event") and fsync it."""
        if "event" not in record:
            raise ValueError("metrics records need an 'event' key")
        line = json.dumps(record, allow_nan=False) + "\n"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise CifarbError(os_error_message(self.metrics_path, exc)) from None

    def read_metrics(self, event: str | None = None) -> list[dict[str, Any]]:
        """All records (optionally of one event type); a torn last line from a crash is ignored."""
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event is None or rec.get("event") == event:
                records.append(rec)
        return records

    def truncate_epochs(self, last_epoch: int) -> None:
        """Drop epoch lines after `last_epoch` (resuming from a checkpoint older than the log)."""
        if not self.metrics_path.exists():
            return
        keep = [r for r in self.read_metrics() if not (r.get("event") == "epoch" and r.get("epoch", 0) > last_epoch)]
        with atomic_path(self.metrics_path) as tmp:
            tmp.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in keep), encoding="utf-8")

    # --- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], name: str = "last.pt") -> Path:
        import torch

        target = self.checkpoint_path(name)
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
        return target

    def load_checkpoint(self, name: str = "last.pt", map_location: str = "cpu") -> dict[str, Any]:
        """Read a checkpoint with torch's weights-only unpickler: a file from anyone cannot run code."""
        path = self.checkpoint_path(name)
        if not path.exists():
            raise CifarbError(f"no checkpoint at {path}; the run never finished an epoch—start it again without --resume")
        return load_weights_only(path, map_location)

    # --- evaluation outputs ------------------------------------------------------------------
    def write_eval(self, dataset: str, result: dict[str, Any]) -> Path:
        return atomic_write_json(self.eval_path(dataset), result)

    def read_eval(self, dataset: str) -> dict[str, Any]:
        return _read_json(self.eval_path(dataset))

    def eval_datasets(self) -> list[str]:
        d = self.eval_dir
        return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []

    def write_predictions(self, dataset: str, frame: Any) -> Path:
        """Write a pandas DataFrame (index, label, prediction, subgroup, ...) as parquet, atomically."""
        target = self.predictions_path(dataset)
        with atomic_path(target, suffix=".parquet") as tmp:
            frame.to_parquet(tmp, index=False)
        return target

    def read_predictions(self, dataset: str) -> Any:
        import pandas as pd

        return pd.read_parquet(self.predictions_path(dataset))


def load_weights_only(path: Path | str, map_location: str = "cpu", max_bytes: int | None = None) -> Any:
    """`torch.load(path, weights_only=True)`, with one clear error for damaged files and for old checkpoints
    that hold Python objects (they can be converted once, knowingly, with `cifarb convert-checkpoint`)."""
    import pickle

    import torch

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CifarbError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if max_bytes is not None and size > max_bytes:
        raise CifarbError(f"checkpoint {path} is {size} bytes, more than the {max_bytes} expected; it is not "
                          "a cifarb checkpoint of this kind")
    try:
        with warnings.catch_warnings():  # a damaged file makes torch warn (odd protocol...): one message is ours
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = _refusal_reason(str(exc))
        if "Unsupported global" not in first:  # not a refused Python object: damaged pickle bytes
            raise CifarbError(f"checkpoint {path} is unreadable ({first[:120]}); it may be truncated or "
                              "damaged—delete it and restart, or copy it again") from None
        raise CifarbError(
            f"checkpoint {path} holds Python objects other than tensors, which cifarb never unpickles ({first[:200]}). If it is "
            f"an old cifarb checkpoint from a source you trust, convert it once: `{CONVERT_HINT} {path}`"
        ) from None
    except MemoryError:
        raise CifarbError(f"checkpoint {path} is damaged (it asks for more memory than exists); "
                          "delete it and restart, or copy it again") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types (RuntimeError, EOFError, ...) for damage
        raise CifarbError(f"checkpoint {path} is unreadable ({exc.__class__.__name__}); it may be truncated or "
                          "damaged—delete it and restart, or copy it again") from None


def _refusal_reason(message: str) -> str:
    """The line of torch's weights-only refusal that names what was refused (e.g. a global)."""
    for line in message.splitlines():
        line = line.strip()
        if line.startswith(("WeightsUnpickler error", "Unsupported global", "Unsupported operand")):
            return line.split(". Please")[0]
    return message.strip().splitlines()[0] if message.strip() else "refused by the weights-only unpickler"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CifarbError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CifarbError(f"{path} is not valid JSON ({exc}); the run may be corrupt—rerun it") from None
    except OSError as exc:
        raise CifarbError(f"cannot read {path}: {exc.strerror or exc}") from None
    except RecursionError:
        raise CifarbError(f"{path} is nested too deeply to be a cifarb file; the run may be corrupt") from None
    if not isinstance(obj, dict):
        raise CifarbError(f"{path} holds a JSON {type(obj).__name__}, not an object; the run may be corrupt—rerun it")
    return obj
