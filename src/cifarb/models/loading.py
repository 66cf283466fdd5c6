"""Resolve a model SPEC into a `LoadedModel`: a ready classifier with its normalisation and provenance.

A SPEC is one of (docs/evaluation.md, model SPEC):
- a zoo name (`resnet20|32|44|56|110`, `chenyaofo-...`): ResNet20 is bundled; the others are looked up in
  each folder of `$CIFARB_MODELS`, then in `<cache>/models/`, under their original file names, and checked
  by sha256 (models/weights.py);
- a checkpoint file (`.th/.pt/.pth` torch file, read weights-only, or `.safetensors`) plus `--arch`; a file
  whose sha256 matches a zoo card uses that card's architecture and normalisation;
- a `cifarb train` run directory (manifest.json + checkpoints/last.pt);
- `module:callable` (or `path/to/file.py:callable`), a factory returning an `nn.Module`, with `--mean/--std`.
Importing this module does not import torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarb._hashing import sha256_file
from cifarb.errors import CifarbError, UsageError, did_you_mean
from cifarb.models.cards import ZOO, ModelCard, card_for_sha256
from cifarb.models.checkpoint import build_and_load, extract_state, infer_classes, load_state_dict
from cifarb.models.weights import find_weights

_DATASET_CLASSES = {"cifar10": 10, "cifar100": 100}


@dataclass(kw_only=True)
class LoadedModel:
    """A ready-to-run classifier (eval mode, on CPU) and what is needed to feed it and cite it."""

    module: Any  # torch.nn.Module; typed loosely so this module imports without torch
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    arch: str | None
    spec: str
    sha256: str | None  # of the weights file loaded (None for module:callable)
    card: ModelCard | None = None
    num_classes: int | None = None
    source: str = ""  # the file or factory the weights came from
    info: dict[str, Any] = field(default_factory=dict)


def resolve_model(
    spec: str,
    arch: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_classes: int | None = None,
) -> LoadedModel:
    """Load the model a SPEC names (see the module docstring). `num_classes` is what the dataset needs."""
    mean_t = _triple(mean, "--mean")
    std_t = _triple(std, "--std")
    if (mean_t is None) != (std_t is None):
        raise UsageError("give --mean and --std together (three comma-separated numbers each)")
    if std_t is not None and any(s <= 0 for s in std_t):
        raise UsageError(f"--std must be positive, got {std_t}")
    if arch is not None:
        from cifarb.models import ARCHS

        if arch not in ARCHS:
            raise UsageError(f"unknown --arch {arch!r}; choose one of: {', '.join(ARCHS)}")

    path = Path(spec).expanduser()
    if spec.lower() in ZOO and not path.exists():
        return _load_zoo(spec.lower(), arch, mean_t, std_t, num_classes)
    if path.is_dir():
        return _load_rundir(spec, path, arch, mean_t, std_t, num_classes)
    if path.is_file():
        return _load_checkpoint_spec(spec, path, arch, mean_t, std_t, num_classes)
    if ":" in spec:
        return _load_callable(spec, arch, mean_t, std_t, num_classes)
    # a bare word (no folder, no file suffix) is most likely a mistyped zoo name
    hint = did_you_mean(spec, ZOO) if not any(c in spec for c in "/\\.") else ""
    if hint:
        raise CifarbError(f"unknown model {spec!r}{hint}: it is neither a zoo name, an existing checkpoint "
                          "file or run directory, nor module:callable")
    raise CifarbError(
        f"model {spec!r} is neither a zoo name ({', '.join(ZOO)}), an existing checkpoint file or run "
        "directory, nor module:callable; check the spelling or the path"
    )


# --- the four kinds of SPEC ------------------------------------------------------------------------


def _load_zoo(name: str, arch: str | None, mean: Any, std: Any, num_classes: int | None) -> LoadedModel:
    card = ZOO[name]
    if arch is not None and arch != card.arch:
        raise UsageError(f"zoo model {name} is a {card.arch}; drop --arch {arch} or pass a matching one")
    _check_classes(card.num_classes, num_classes, f"zoo model {name}", card.dataset)
    path, digest = find_weights(name)
    state = load_state_dict(path)
    module = build_and_load(card.arch, card.num_classes, {}, state, path)
    return LoadedModel(module=module, mean=mean or card.mean, std=std or card.std, arch=card.arch, spec=name,
                       sha256=digest, card=card, num_classes=card.num_classes, source=str(path))


def _load_checkpoint_spec(spec: str, path: Path, arch: str | None, mean: Any, std: Any,
                          num_classes: int | None) -> LoadedModel:
    digest = sha256_file(path)
    card = card_for_sha256(digest)
    manifest_norm = _sibling_manifest(path)
    if card is not None:
        if arch is not None and arch != card.arch:
            raise CifarbError(f"{path} is the published {card.name} checkpoint ({card.arch}); "
                              f"it does not fit --arch {arch}: drop --arch or pass --arch {card.arch}")
        arch = card.arch
        _check_classes(card.num_classes, num_classes, f"{path} ({card.name})", card.dataset)
    elif manifest_norm is not None and arch is None:
        arch = manifest_norm.get("arch")
    if arch is None:
        raise UsageError(f"{path} is not a zoo checkpoint, so its architecture is unknown: pass --arch NAME")
    # whatever folder it sits in, a checkpoint is read weights-only: a manifest beside it proves nothing
    state, extras = load_state_dict(path, full=True)
    if mean is None:
        if card is not None:
            norm: dict[str, Any] | None = {"mean": card.mean, "std": card.std}
        else:
            norm = _normalisation_from(extras) or _normalisation_from(manifest_norm)
        if norm is None:
            raise UsageError(
                f"the input normalisation of {path} is unknown: pass --mean R,G,B --std R,G,B "
                "(the values the model was trained with)"
            )
        mean, std = _triple(norm["mean"], "mean"), _triple(norm["std"], "std")
    n_cls = num_classes if num_classes is not None else infer_classes(state)
    module = build_and_load(arch, n_cls, {}, state, path)
    return LoadedModel(module=module, mean=mean, std=std, arch=arch, spec=spec, sha256=digest, card=card,
                       num_classes=n_cls, source=str(path))


def _load_rundir(spec: str, path: Path, arch: str | None, mean: Any, std: Any,
                 num_classes: int | None) -> LoadedModel:
    from cifarb.runs import RunDir

    run = RunDir(path)
    if not run.manifest_path.exists():
        raise CifarbError(f"{path} is a directory but not a cifarb run (no manifest.json); "
                          "give a run directory made by `cifarb train`, or a checkpoint file with --arch")
    manifest = run.read_manifest()
    config = manifest.get("config") or {}
    if not isinstance(config, dict):
        raise CifarbError(f"{run.manifest_path}: 'config' is not a JSON object; the run is damaged")
    run_arch = config.get("arch")
    if not isinstance(run_arch, str):
        raise CifarbError(f"{run.manifest_path} names no architecture (config.arch); the run is incomplete")
    if arch is not None and arch != run_arch:
        raise CifarbError(f"{path} trained a {run_arch}; it does not fit --arch {arch}: drop --arch")
    run_classes = config.get("num_classes") or _DATASET_CLASSES.get(str(config.get("dataset")))
    if isinstance(run_classes, bool) or not isinstance(run_classes, int) or not 0 < run_classes <= 100_000:
        raise CifarbError(f"{run.manifest_path} names no dataset or num_classes; the run is incomplete")
    _check_classes(int(run_classes), num_classes, f"run {path}", str(config.get("dataset")))
    if mean is None:
        norm = _normalisation_from(config) or _normalisation_from(manifest)
        if norm is None:
            raise CifarbError(f"{run.manifest_path} records no input normalisation (config.mean/std); "
                              "pass --mean R,G,B --std R,G,B")
        mean, std = _triple(norm["mean"], "mean"), _triple(norm["std"], "std")
    ckpt = run.checkpoint_path("last.pt")
    if not ckpt.exists():
        raise CifarbError(f"{path} has no checkpoint ({ckpt}); the run never finished an epoch")
    digest = sha256_file(ckpt)
    # read weights-only like any other file: a run directory from someone else must not run code
    payload = run.load_checkpoint("last.pt")
    state = extract_state(payload, ckpt)
    options = config.get("arch_options") or {}
    if not isinstance(options, dict):
        raise CifarbError(f"{run.manifest_path}: config.arch_options is not a JSON object; the run is damaged")
    module = build_and_load(run_arch, int(run_classes), dict(options), state, ckpt)
    return LoadedModel(module=module, mean=mean, std=std, arch=run_arch, spec=spec, sha256=digest,
                       num_classes=int(run_classes), source=str(ckpt), info={"run": str(path), "dataset": config.get("dataset")})


def _load_callable(spec: str, arch: str | None, mean: Any, std: Any, num_classes: int | None) -> LoadedModel:
    import torch

    if mean is None:
        raise UsageError(f"model {spec} is a module:callable factory: pass --mean R,G,B --std R,G,B as well")
    if arch is not None:
        raise UsageError("--arch applies to checkpoint files only, not to module:callable")
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise UsageError(f"model {spec!r}: expected module:callable, e.g. mypkg.nets:build")
    module_obj = _import_target(target)
    factory: Any = module_obj
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise CifarbError(f"{target} has no attribute {attr!r}; check the callable's name in {spec}")
    if not callable(factory):
        raise CifarbError(f"{spec} is not callable")
    kwargs = {}
    if num_classes is not None and _accepts(factory, "num_classes"):
        kwargs["num_classes"] = num_classes
    net = factory(**kwargs)
    if not isinstance(net, torch.nn.Module):
        raise CifarbError(f"{spec}() returned {type(net).__name__}, not a torch.nn.Module")
    net.eval()
    return LoadedModel(module=net, mean=mean, std=std, arch=None, spec=spec, sha256=None, num_classes=num_classes,
                       source=spec)


# --- helpers -------------------------------------------------------------------------------------


def _check_classes(have: int, want: int | None, what: str, dataset: str) -> None:
    if want is not None and have != want:
        raise CifarbError(f"{what} predicts {have} classes ({dataset}) but the dataset has {want}; "
                          "evaluate it on a dataset with the same classes")


def _triple(values: Sequence[float] | None, what: str) -> tuple[float, float, float] | None:
    if values is None:
        return None
    try:
        t = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        t = ()
    if len(t) != 3:
        raise UsageError(f"{what} needs three numbers R,G,B, got {values!r}")
    return t  # type: ignore[return-value]


def _normalisation_from(obj: Any) -> dict[str, Any] | None:
    """{"mean", "std"} from a manifest/config/checkpoint dict: top-level mean/std or a `normalization` entry."""
    if not isinstance(obj, Mapping):
        return None
    for holder in (obj, obj.get("normalization"), obj.get("normalisation")):
        if isinstance(holder, Mapping) and holder.get("mean") is not None and holder.get("std") is not None:
            return {"mean": holder["mean"], "std": holder["std"]}
    return None


def _sibling_manifest(path: Path) -> dict[str, Any] | None:
    """For RUNDIR/checkpoints/X.pt: the run's arch and normalisation from RUNDIR/manifest.json."""
    manifest = path.resolve().parent.parent / "manifest.json"
    if path.resolve().parent.name != "checkpoints" or not manifest.exists():
        return None
    import json

    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    norm = _normalisation_from(config) or _normalisation_from(data) or {}
    arch = config.get("arch")
    return {"arch": arch if isinstance(arch, str) else None, **norm}


def _import_target(target: str) -> Any:
    """Import `target`: a dotted module name (the current directory is searched too) or a .py file."""
    if target.endswith(".py"):
        file = Path(target).expanduser()
        if not file.is_file():
            raise CifarbError(f"{file} does not exist; give module:callable or path/to/file.py:callable")
        name = f"cifarb_user_{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise CifarbError(f"cannot import {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is None or not target.startswith(exc.name):
            raise  # the user's module itself failed to import one of its dependencies
    cwd = os.getcwd()
    if cwd not in sys.path:  # the console script does not put the working directory on sys.path
        sys.path.insert(0, cwd)
        try:
            return importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name is None or not target.startswith(exc.name):
                raise
        finally:
            sys.path.remove(cwd)
    raise CifarbError(f"cannot import module {target!r} (not installed and not in {cwd}); "
                      "check the name, or use path/to/file.py:callable")


def _accepts(func: Any, name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
