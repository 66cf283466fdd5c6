"""Study configs: a TOML matrix of dataset x arch x aug x seed, expanded into cells with stable names.

    [study]
    name = "cpu-slice"
    out = "runs/study-cpu"           # relative paths are relative to the current directory
    datasets = ["cifar10"]
    archs = ["fastnet"]
    augs = ["standard", "mixup"]
    seeds = [0, 1]
    baseline = "standard"            # the aug every other is compared with (default: the first)
    epochs = 10                      # optional; any cell setting below may also sit here
    root = "../shared/data"
    trust_local = true
    c_root = "runs/c-local"          # a generated -C set (cifarb data make-c --out), used when the
                                     # root has no official CIFAR-10-C/
    train_args = ["--workers", "0"]  # extra `cifarb train` flags
    eval_args = ["--batch-size", "512"]

    [[override]]                     # later overrides win; `match` selects cells
    match = { aug = "mixup" }
    epochs = 15

    [slurm]                          # only for --launcher slurm (submitit parameters)
    partition = "gpu"
    timeout_min = 120
    gpus_per_node = 1
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cifarb.data.names import TRAIN_DATASETS
from cifarb.errors import CifarbError, did_you_mean

# Settings a cell carries; each may be given in [study] (all cells) or in an [[override]].
CELL_KEYS = {
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "weight_decay": float,
    "device": str,
    "workers": int,
    "threads": int,
    "root": str,
    "trust_local": bool,
    "c_root": str,
    "train_args": list,
    "eval_args": list,
    "evals": list,
}
MATRIX_KEYS = ("datasets", "archs", "augs", "seeds")
STUDY_KEYS = {"name", "out", "baseline", "train_command", "eval_command", *MATRIX_KEYS, *CELL_KEYS}
EVAL_KINDS = ("b", "c", "10.1")
MATCH_KEYS = ("dataset", "arch", "aug", "seed")
_NAME_OK = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass(frozen=True)
class CellSettings:
    """Per-cell training/evaluation settings (None = the command's own default)."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    device: str | None = None
    workers: int | None = None
    threads: int | None = None  # CPU threads of each child; None: the study's share, else the default
    root: str | None = None
    trust_local: bool = False
    c_root: str | None = None
    train_args: tuple[str, ...] = ()
    eval_args: tuple[str, ...] = ()
    evals: tuple[str, ...] = EVAL_KINDS


@dataclass(frozen=True)
class Cell:
    """One training run of the matrix and the evaluations that follow it."""

    dataset: str
    arch: str
    aug: str
    seed: int
    settings: CellSettings = field(default_factory=CellSettings)

    @property
    def name(self) -> str:
        """Stable directory name: `<dataset>-<arch>-<aug>-s<seed>` ('+' in compositions becomes '_')."""
        return f"{self.dataset}-{self.arch}-{self.aug.replace('+', '_')}-s{self.seed}"


@dataclass(frozen=True)
class StudyConfig:
    name: str
    out: Path
    cells: tuple[Cell, ...]
    source: Path | None = None
    train_command: tuple[str, ...] | None = None
    eval_command: tuple[str, ...] | None = None
    slurm: dict[str, Any] = field(default_factory=dict)
    baseline: str = ""  # the aug the report compares every other method with

    def describe(self) -> dict[str, Any]:
        """What `cifarb report` needs to know about the study (written to <out>/_study.json)."""
        return {"name": self.name, "baseline": self.baseline, "augs": list(dict.fromkeys(c.aug for c in self.cells)),
                "source": None if self.source is None else str(self.source)}


def bundled_configs() -> dict[str, Path]:
    """Example configs shipped in the package: name -> path."""
    here = Path(__file__).resolve().parent / "configs"
    return {p.stem: p for p in sorted(here.glob("*.toml"))}


def resolve_config_path(spec: str | Path) -> Path:
    """A TOML file path, or the name of a bundled example config."""
    path = Path(spec)
    if path.is_file():
        return path
    bundled = bundled_configs()
    if str(spec) in bundled:
        return bundled[str(spec)]
    if path.exists():
        raise CifarbError(f"study config {path} is not a file; give a TOML file")
    raise CifarbError(
        f"study config {spec} not found{did_you_mean(str(spec), bundled)}; give a TOML file or one of the bundled "
        f"configs: {', '.join(bundled)}"
    )


def load_config(spec: str | Path, out: str | Path | None = None) -> StudyConfig:
    """Read and validate a study config (file or bundled name); `out` overrides [study].out."""
    path = resolve_config_path(spec)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CifarbError(f"study config {path} is not valid TOML ({exc}); fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CifarbError(f"cannot read study config {path}: {exc}") from None
    return parse_config(data, source=path, out=out)


def _err(source: Path | None, msg: str) -> CifarbError:
    where = f"study config {source}" if source else "study config"
    return CifarbError(f"{where}: {msg}")


def _check_value(source: Path | None, where: str, key: str, value: Any) -> Any:
    kind = CELL_KEYS[key]
    if isinstance(value, bool) and kind is not bool:
        raise _err(source, f"{where}.{key} must be {kind.__name__}, got {value!r}")
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise _err(source, f"{where}.{key} must be {kind.__name__}, got {value!r}")
    if kind is list:
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            raise _err(source, f"{where}.{key} must be a list of strings, got {value!r}")
        value = tuple(str(v) for v in value)
    if key in ("epochs", "batch_size", "threads") and value <= 0:
        raise _err(source, f"{where}.{key} must be positive, got {value}")
    if key in ("lr",) and not value > 0:
        raise _err(source, f"{where}.{key} must be positive, got {value}")
    if key == "evals":
        bad = [v for v in value if v not in EVAL_KINDS]
        if bad:
            raise _err(source, f"{where}.evals has unknown entries {bad}; allowed: {list(EVAL_KINDS)}")
    return value


def _settings_from(source: Path | None, where: str, table: dict[str, Any], base: CellSettings) -> CellSettings:
    changes = {k: _check_value(source, where, k, v) for k, v in table.items() if k in CELL_KEYS}
    return replace(base, **changes)


def _str_list(source: Path | None, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _err(source, f"[study].{key} must be a non-empty list of names, got {value!r}")
    bad = [v for v in value if not _NAME_OK.match(v)]
    if bad:
        raise _err(source, f"[study].{key} has names with unusable characters: {bad}")
    if len(set(value)) != len(value):
        raise _err(source, f"[study].{key} lists a name twice: {value}")
    return value


def parse_config(data: dict[str, Any], source: Path | None = None, out: str | Path | None = None) -> StudyConfig:
    """Validate a parsed TOML document and expand the matrix (dataset-major, then arch, aug, seed)."""
    unknown_tables = set(data) - {"study", "override", "slurm"}
    if unknown_tables:
        raise _err(source, f"unknown top-level entries {sorted(unknown_tables)}; allowed: [study], [[override]], [slurm]")
    study = data.get("study")
    if not isinstance(study, dict):
        raise _err(source, "needs a [study] table with datasets, archs, augs and seeds")
    unknown = set(study) - STUDY_KEYS
    if unknown:
        raise _err(source, f"[study] has unknown keys {sorted(unknown)}; allowed: {sorted(STUDY_KEYS)}")
    missing = [k for k in MATRIX_KEYS if k not in study]
    if missing:
        raise _err(source, f"[study] is missing {missing}")
    datasets = _str_list(source, "datasets", study["datasets"])
    bad = [d for d in datasets if d not in TRAIN_DATASETS]
    if bad:
        raise _err(source, f"[study].datasets has unknown training datasets {bad}; use {list(TRAIN_DATASETS)}")
    archs = _str_list(source, "archs", study["archs"])
    augs = _str_list(source, "augs", study["augs"])
    seeds = study["seeds"]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise _err(source, f"[study].seeds must be a list of distinct non-negative integers, got {seeds!r}")

    base = _settings_from(source, "[study]", study, CellSettings())
    overrides = data.get("override", [])
    if not isinstance(overrides, list):
        raise _err(source, "override entries must be written [[override]] (an array of tables)")
    parsed_overrides: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    for i, ov in enumerate(overrides):
        where = f"[[override]] #{i + 1}"
        match = ov.get("match", {})
        if not isinstance(match, dict) or set(match) - set(MATCH_KEYS):
            raise _err(source, f"{where}.match must be a table with keys among {list(MATCH_KEYS)}, got {match!r}")
        extra = set(ov) - {"match"} - set(CELL_KEYS)
        if extra:
            raise _err(source, f"{where} has unknown keys {sorted(extra)}; allowed: {sorted(CELL_KEYS)}")
        parsed_overrides.append((match, {k: v for k, v in ov.items() if k != "match"}, where))

    cells = []
    for ds in datasets:
        for arch in archs:
            for aug in augs:
                for seed in seeds:
                    settings = base
                    for match, table, where in parsed_overrides:
                        values = {"dataset": ds, "arch": arch, "aug": aug, "seed": seed}
                        if all(_matches(values[k], v) for k, v in match.items()):
                            settings = _settings_from(source, where, table, settings)
                    cells.append(Cell(ds, arch, aug, int(seed), settings))
    for i, (match, _, where) in enumerate(parsed_overrides):
        if not any(_matches_cell(c, match) for c in cells):
            raise _err(source, f"{where} matches no cell ({match}); fix or remove it (override {i + 1})")

    name = study.get("name", source.stem if source else "study")
    if not isinstance(name, str) or not name:
        raise _err(source, f"[study].name must be a string, got {name!r}")
    from cifarb.runs.rundir import is_plain_name

    if not is_plain_name(name):  # it names the folder runs/study-<name>: it must not escape it
        raise _err(source, f"[study].name {name!r} must be a plain name (no '/', '..' or leading '.')")
    out_value = out if out is not None else study.get("out", f"runs/study-{name}")
    if not isinstance(out_value, str | Path):
        raise _err(source, f"[study].out must be a path string, got {out_value!r}")
    commands = {}
    for key in ("train_command", "eval_command"):
        value = study.get(key)
        if value is not None and (not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value)):
            raise _err(source, f"[study].{key} must be a list of strings (argv prefix), got {value!r}")
        commands[key] = tuple(value) if value else None
    baseline = study.get("baseline", augs[0])
    if not isinstance(baseline, str) or baseline not in augs:
        raise _err(source, f"[study].baseline must be one of the augs {augs}, got {baseline!r}")
    slurm = data.get("slurm", {})
    if not isinstance(slurm, dict):
        raise _err(source, "[slurm] must be a table of submitit parameters")
    return StudyConfig(
        name=name,
        out=Path(out_value),
        cells=tuple(cells),
        source=source,
        train_command=commands["train_command"],
        eval_command=commands["eval_command"],
        slurm=dict(slurm),
        baseline=baseline,
    )


def _matches(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, list):
        return value in pattern
    return value == pattern


def _matches_cell(cell: Cell, match: dict[str, Any]) -> bool:
    values = {"dataset": cell.dataset, "arch": cell.arch, "aug": cell.aug, "seed": cell.seed}
    return all(_matches(values[k], v) for k, v in match.items())
