"""Read run directories for reports: keep complete, valid runs; report corrupt or partial ones, never use them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarb.data.names import parse_eval_name
from cifarb.errors import CifarbError
from cifarb.metrics import catalog
from cifarb.runs.rundir import RunDir

# Result keys every report reads; checked even when jsonschema (the test extra) is not installed.
_REQUIRED = ("dataset", "n_images", "n_official", "data_verified", "accuracy", "macro_std", "macro_std_null",
             "macro_std_excess", "worst_cell_accuracy", "cells", "settings")
_FRACTIONS = catalog.keys(required=True, format="percent")


def eval_kind(name: str) -> str | None:
    """"b", "c" or "10.1" for an evaluation name (`cifar10-b`, `cifar10-c-local`, `cifar10.1`, ...)."""
    parsed = parse_eval_name(name)
    return None if parsed is None else parsed.kind


@dataclass
class Run:
    """One usable run directory: its manifest facts and result JSONs by kind ("b", "c", "10.1")."""

    path: Path
    dataset: str  # training dataset (cifar10 / cifar100), from the manifest or the CIFAR-B result
    arch: str
    aug: str
    seed: int | None
    results: dict[str, dict[str, Any]]
    eval_names: dict[str, str]  # kind -> evaluation name actually found (e.g. cifar10-c-local)
    manifest: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def group(self) -> tuple[str, str, str]:
        """What seeds are averaged over: (training dataset, arch, aug)."""
        return (self.dataset, self.arch, self.aug)


@dataclass
class Problem:
    """A run directory that was not used, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class LoadedRuns:
    runs: list[Run]
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)


def check_result(result: Any, expected_dataset: str | None = None, schema: bool = True,
                 required: Sequence[str] = _REQUIRED) -> str | None:
    """None if `result` is a usable result JSON, else what is wrong with it: the one check behind reports
    and the study's "is this evaluation done" test.

    Always checks the `required` keys (default: those reports read) and the value ranges; with `schema`
    also validates against the shipped JSON Schema (when jsonschema is installed).
    """
    if not isinstance(result, dict):
        return "not a JSON object"
    missing = [k for k in required if k not in result]
    if missing:
        return f"lacks required keys {missing}"
    if expected_dataset is not None and result["dataset"] != expected_dataset:
        return f"says dataset {result['dataset']!r} but is stored as {expected_dataset}.json"
    kind = eval_kind(str(result["dataset"]))
    for key in _FRACTIONS:
        v = result.get(key)
        if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and 0.0 <= v <= 1.0):
            return f"{key} = {v!r} is not a fraction in [0, 1]"
    ex = result.get("macro_std_excess")
    if ex is not None and not (isinstance(ex, int | float) and -1.0 <= ex <= 1.0):
        return f"macro_std_excess = {ex!r} is outside [-1, 1]"
    if kind == "b" and "cells" in result:  # always there unless `required` leaves it out
        cells = result["cells"]
        if not isinstance(cells, list) or not cells:
            return "has no cells"
        total = sum(int(c.get("n", 0)) for c in cells)
        if total != result["n_images"]:
            return f"cells hold {total} images but n_images is {result['n_images']}"
        if result.get("macro_std") is None:
            return "macro_std is null"
    if schema:
        try:
            from cifarb.metrics import validate_result
        except ImportError:  # metrics layer missing from this build: key checks above still apply
            return None
        try:
            validate_result(result)
        except CifarbError as exc:
            if "needs jsonschema" in str(exc):
                return None
            return str(exc)
    return None


def read_result(path: Path, expected_dataset: str | None = None, *, schema: bool = True,
                required: Sequence[str] = _REQUIRED) -> tuple[Any, str | None]:
    """(the result JSON at `path`, None), or (whatever was read, what is wrong with it); see check_result."""
    obj, err = _read_json(path)
    return obj, err or check_result(obj, expected_dataset, schema=schema, required=required)


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"unreadable or truncated JSON ({exc.__class__.__name__}: {exc})"


def _expected_epochs(manifest: Mapping[str, Any]) -> int | None:
    for block in (manifest.get("config"), manifest.get("hparams")):
        if isinstance(block, Mapping) and isinstance(block.get("epochs"), int):
            return int(block["epochs"])
    return None


def _epochs_done(path: Path) -> int:
    done = 0
    metrics = RunDir(path).metrics_path
    if not metrics.is_file():
        return 0
    for line in metrics.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a killed run
        if isinstance(rec, dict) and rec.get("event") == "epoch" and isinstance(rec.get("epoch"), int):
            done = max(done, rec["epoch"])
    return done


def load_run(path: Path | str, schema: bool = True) -> Run | Problem:
    """A Run, or the Problem that keeps it out of a report."""
    path = Path(path)
    if not path.is_dir():
        return Problem(path, "not a directory" if path.exists() else "does not exist")
    manifest: dict[str, Any] | None = None
    run = RunDir(path)
    if run.manifest_path.exists():
        obj, err = _read_json(run.manifest_path)
        if err or not isinstance(obj, dict):
            return Problem(path, f"corrupt manifest.json ({err or 'not a JSON object'}); rerun the cell")
        manifest = obj
    eval_files = sorted(run.eval_dir.glob("*.json")) if run.eval_dir.is_dir() else []
    if manifest is None and not eval_files:
        return Problem(path, "not a run directory (no manifest.json, no eval/*.json)")
    if manifest is not None and manifest.get("kind", "train") == "train":
        expected, done = _expected_epochs(manifest), _epochs_done(path)
        if expected is not None and done < expected:
            return Problem(path, f"partial: trained {done} of {expected} epochs; resume it "
                                 f"(cifarb train ... --out {path} --resume, or rerun the study)")
    if not eval_files:
        return Problem(path, "partial: no evaluation results in eval/ (training did not finish?)")

    results: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    bad: list[str] = []
    notes: list[str] = []
    for f in eval_files:
        kind = eval_kind(f.stem)
        if kind is None:
            notes.append(f"ignored eval/{f.name} (not a dataset the report knows)")
            continue
        obj, err = read_result(f, f.stem, schema=schema)
        if err:
            bad.append(f"eval/{f.name}: {err}")
            continue
        if kind in results:  # an official set and a generated (-local) one: the official one wins
            local, official = (f.stem, names[kind]) if parse_eval_name(f.stem).local else (names[kind], f.stem)
            notes.append(f"ignored eval/{local}.json: the official {official} result is present")
            if f.stem == local:
                continue
        results[kind] = obj
        names[kind] = f.stem
    if bad:
        return Problem(path, "corrupt results, whole run left out: " + "; ".join(bad))
    if "b" not in results:
        return Problem(path, "no CIFAR-B result (eval/cifar10-b.json or cifar100-b.json); evaluate it first")

    cfg = manifest.get("config", {}) if manifest else {}
    cfg = cfg if isinstance(cfg, Mapping) else {}
    b = results["b"]
    dataset = str(cfg.get("dataset") or names["b"].removesuffix("-b"))
    arch = str(cfg.get("arch") or b.get("provenance", {}).get("model") or path.name)
    aug = str(cfg.get("aug") or "-")
    seed = manifest.get("seed", cfg.get("seed")) if manifest else None
    seed = int(seed) if isinstance(seed, int) else None
    if manifest is None:
        notes.append("no manifest.json (evaluation-only run directory): grouped by model spec")
    return Run(path, dataset, arch, aug, seed, results, names, manifest, notes)


def expand_paths(paths: Iterable[Path | str]) -> tuple[list[Path], list[str]]:
    """Run directories from the arguments; a study folder (no manifest, no eval/) expands to its cells."""
    out: list[Path] = []
    notes: list[str] = []
    for p in map(Path, paths):
        is_run = RunDir(p).exists() or RunDir(p).eval_dir.is_dir()
        # `report runs/study/*` also names the study's _logs/, _submitit/, _study.json and report files
        if not is_run and p.name.startswith(("_", ".")) and p.exists():
            notes.append(f"{p}: ignored (a study's own {'folder' if p.is_dir() else 'file'}, not a run)")
            continue
        if p.is_file():
            notes.append(f"{p}: ignored (a file, not a run directory)")
            continue
        if p.is_dir() and not is_run:
            children = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith(("_", ".")))
            if children:
                notes.append(f"{p}: study folder, {len(children)} run directories")
                out.extend(children)
                continue
        out.append(p)
    return out, notes


def load_runs(paths: Iterable[Path | str], schema: bool = True) -> LoadedRuns:
    """Load every run directory (study folders expand); corrupt or partial ones become Problems."""
    expanded, notes = expand_paths(paths)
    runs: list[Run] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for p in expanded:
        key = p.resolve()
        if key in seen:
            notes.append(f"{p}: given twice, used once")
            continue
        seen.add(key)
        item = load_run(p, schema=schema)
        (problems if isinstance(item, Problem) else runs).append(item)  # type: ignore[arg-type]
    return LoadedRuns(runs, problems, notes)
