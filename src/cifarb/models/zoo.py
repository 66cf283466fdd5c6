"""Model zoo: cards for the published CIFAR-10 ResNets, and `resolve_model` for every kind of model SPEC.

Importing this module is cheap (no torch); `resolve_model` imports torch when it loads weights.

A SPEC is one of (docs/evaluation.md, model SPEC):
- a zoo name (`resnet20|32|44|56|110`): ResNet20 is bundled; the others are looked up in each folder of
  `$CIFARB_MODELS`, then in `<cache>/models/`, under their original file names, and checked by sha256;
- a checkpoint file (`.th/.pt/.pth` torch file, read weights-only, or `.safetensors`) plus `--arch`; a file whose sha256
  matches a zoo card uses that card's architecture and normalisation;
- a `cifarb train` run directory (manifest.json + checkpoints/last.pt);
- `module:callable` (or `path/to/file.py:callable`), a factory returning an `nn.Module`, with
  `--mean/--std`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarb.errors import CifarbError, UsageError
from cifarb.models import _card_tables

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_AKAMASTER_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
_AKAMASTER_LICENSE = "BSD-2-Clause, Copyright (c) 2018, Yerlan Idelbayev"
_DATASET_CLASSES = {"cifar10": 10, "cifar100": 100}


@dataclass(frozen=True)
class ModelCard:
    """What cifarb knows about one published checkpoint."""

    name: str
    arch: str
    filename: str
    url: str
    sha256: str
    reported_accuracy: float  # fraction, as reported by the authors on the full CIFAR-10 test set
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 10
    dataset: str = "cifar10"
    license: str = _AKAMASTER_LICENSE
    citations: tuple[str, ...] = ("he2016resnet", "idelbayev2018resnet")
    sha256_is_prefix: bool = False
    bundled: str | None = None  # file name under cifarb/models/assets/
    bundled_sha256: str | None = None
    notes: str = ""

    def matches(self, digest: str) -> bool:
        """True when `digest` (full sha256 hex) is this checkpoint: the original file or the bundled copy."""
        digest = digest.lower()
        if self.bundled_sha256 is not None and digest == self.bundled_sha256:
            return True
        if self.sha256_is_prefix:
            # Only a prefix is published (the 8 hex digits in the file name); like torch.hub's
            # check_hash, a file is accepted when its sha256 starts with it.
            return digest.startswith(self.sha256)
        return digest == self.sha256

    def describe(self) -> str:
        """The model card as a few human-readable lines."""
        if self.sha256_is_prefix:
            check = (f"sha256 prefix {self.sha256} (only the prefix is published; the file is verified "
                     "by prefix, as torch.hub's check_hash does)")
        else:
            check = f"sha256 {self.sha256}"
        lines = [
            f"{self.name}: {self.arch}, {self.num_classes} classes ({self.dataset}), reported test "
            f"accuracy {100 * self.reported_accuracy:.2f} %",
            f"  weights: {self.filename} from {self.url}",
            f"  check:   {check}",
            f"  input:   RGB in [0, 1], mean {self.mean}, std {self.std}",
            f"  licence: {self.license}",
        ]
        if self.bundled:
            lines.append(f"  bundled: cifarb/models/assets/{self.bundled} (sha256 {self.bundled_sha256})")
        if self.notes:
            lines.append(f"  notes:   {self.notes}")
        return "\n".join(lines)


def _akamaster(depth: int, sha256: str, accuracy: float, **extra: Any) -> ModelCard:
    filename = f"resnet{depth}-{sha256[:8]}.th"
    return ModelCard(
        name=f"resnet{depth}", arch=f"resnet{depth}", filename=filename, url=_AKAMASTER_URL + filename,
        sha256=sha256, reported_accuracy=accuracy,
        notes="option-A shortcuts; published by akamaster/pytorch_resnet_cifar10", **extra,
    )


# Values from ../shared/checksums.md (published); accuracies as reported by the checkpoints' authors.
ZOO: dict[str, ModelCard] = {
    c.name: c
    for c in (
        _akamaster(20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 0.9178,
                   bundled="resnet20.safetensors",
                   bundled_sha256="9fddb1d3b1a550115a4790bd92b21cadc710ea746ea63fb77efaf8a5b3935e35"),
        _akamaster(32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 0.9278),
        _akamaster(44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 0.9314),
        _akamaster(56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 0.9362),
        _akamaster(110, "1d1ed7c2", 0.9368, sha256_is_prefix=True),
    )
}

# Cards kept as data files (models/assets/*_cards.toml): the chenyaofo CIFAR-10/100 family, prefix-verified.
ZOO.update((card.name, card) for card in _card_tables.cards_from_tables(ModelCard))


def get_card(name: str) -> ModelCard:
    """The card of zoo model `name`; CifarbError listing the names if unknown."""
    try:
        return ZOO[name.lower()]
    except KeyError:
        raise CifarbError(f"unknown zoo model {name!r}; choose one of: {', '.join(ZOO)}") from None


def card_for_sha256(digest: str) -> ModelCard | None:
    """The zoo card whose checkpoint has this sha256 (full hex), or None."""
    for card in ZOO.values():
        if card.matches(digest):
            return card
    return None


def models_cache_dir() -> Path:
    """`<cache>/models`, where downloaded zoo weights live (the cache honours $CIFARB_CACHE)."""
    from cifarb.data.root import cache_dir

    return Path(cache_dir()) / "models"


def default_weight_path(name: str) -> Path:
    """Where `cifarb data fetch NAME` puts zoo weights, and where `cifarb data where NAME` says to put them."""
    return models_cache_dir() / get_card(name).filename


def weight_candidates(name: str) -> list[Path]:
    """Every path looked at for zoo model `name`, in order: each $CIFARB_MODELS folder, then the cache."""
    card = get_card(name)
    folders = [Path(p).expanduser() for p in os.environ.get("CIFARB_MODELS", "").split(os.pathsep) if p]
    return [f / card.filename for f in folders] + [models_cache_dir() / card.filename]


def bundled_path(card: ModelCard) -> Path:
    """The path of a card's bundled weights inside the installed package."""
    if card.bundled is None:
        raise CifarbError(f"{card.name} has no bundled weights")
    return Path(__file__).resolve().parent / "assets" / card.bundled


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise CifarbError(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def find_weights(name: str) -> tuple[Path, str]:
    """(path, sha256) of verified weights for zoo model `name`; CifarbError saying where to put them."""
    card = get_card(name)
    if card.bundled is not None:
        path = bundled_path(card)
        digest = sha256_file(path)
        if not card.matches(digest):
            raise CifarbError(f"bundled weights {path} have sha256 {digest}, expected {card.bundled_sha256}; "
                              "the installation is damaged—reinstall cifarb")
        return path, digest
    candidates = weight_candidates(name)
    for path in candidates:
        if path.is_file():
            digest = sha256_file(path)
            if not card.matches(digest):
                expected = f"a sha256 starting with {card.sha256}" if card.sha256_is_prefix else card.sha256
                raise CifarbError(
                    f"{path} has sha256 {digest}, expected {expected}: it is not the published {card.filename} "
                    f"(damaged or a different file); delete it and download {card.url}"
                )
            return path, digest
    looked = ", ".join(str(p) for p in candidates)
    raise CifarbError(
        f"weights for {name} not found (looked in {looked}). Download {card.url} and put it at "
        f"{default_weight_path(name)} (or in a folder listed in $CIFARB_MODELS); "
        f"`cifarb data where {name}` prints the path, checksum and URL"
    )


@dataclass
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
    module = _build_and_load(card.arch, card.num_classes, {}, state, path)
    return LoadedModel(module, mean or card.mean, std or card.std, card.arch, name, digest, card,
                       card.num_classes, str(path))


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
    n_cls = num_classes if num_classes is not None else _infer_classes(state)
    module = _build_and_load(arch, n_cls, {}, state, path)
    return LoadedModel(module, mean, std, arch, spec, digest, card, n_cls, str(path))


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
    state = _extract_state(payload, ckpt)
    options = config.get("arch_options") or {}
    if not isinstance(options, dict):
        raise CifarbError(f"{run.manifest_path}: config.arch_options is not a JSON object; the run is damaged")
    module = _build_and_load(run_arch, int(run_classes), dict(options), state, ckpt)
    return LoadedModel(module, mean, std, run_arch, spec, digest, None, int(run_classes), str(ckpt),
                       info={"run": str(path), "dataset": config.get("dataset")})


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
    return LoadedModel(net, mean, std, None, spec, None, None, num_classes, spec)


# --- helpers -------------------------------------------------------------------------------------


def load_state_dict(path: Path, full: bool = False) -> Any:
    """Tensors of a `.safetensors` or torch checkpoint file (prefixes `module.`/`_orig_mod.` removed).

    Torch files are always read with `weights_only=True`, so unpickling cannot run code; an old file that
    needs more gets an error naming `cifarb convert-checkpoint`. With `full`, returns (state_dict, the other
    top-level entries).
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a damaged header
            raise CifarbError(f"{path} is not a readable safetensors file ({str(exc)[:120]}); download it again") from None
        state = _strip_prefixes(state)
        return (state, {}) if full else state
    from cifarb.runs.rundir import load_weights_only

    payload = load_weights_only(path)
    state = _extract_state(payload, path)
    if not full:
        return state
    extras = {k: v for k, v in payload.items() if not _is_tensor_map(v)} if isinstance(payload, dict) else {}
    return state, extras


def _is_tensor_map(obj: Any) -> bool:
    import torch

    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _extract_state(payload: Any, path: Path) -> dict[str, Any]:
    if isinstance(payload, Mapping):
        for key in ("state_dict", "model", "model_state_dict", "net", "ema"):
            if key in payload and _is_tensor_map(payload[key]):
                return _strip_prefixes(payload[key])
        if _is_tensor_map(payload):
            return _strip_prefixes(payload)
    raise CifarbError(f"{path} holds no state dict (expected a dict of tensors, or one under 'state_dict' or "
                      "'model'); save it with torch.save({'model': model.state_dict()}, path)")


def _strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop DataParallel (`module.`) and torch.compile (`_orig_mod.`) prefixes from every key."""
    out = {}
    for key, value in state.items():
        k = key
        while True:
            for prefix in ("module.", "_orig_mod."):
                if k.startswith(prefix):
                    k = k[len(prefix):]
                    break
            else:
                break
        out[k] = value
    return out


def _build_and_load(arch: str, num_classes: int, options: dict[str, Any], state: Mapping[str, Any],
                    path: Path) -> Any:
    """Build `arch` and load `state` into it; an error naming the misfit if the checkpoint does not fit."""
    from cifarb.models import build_model

    net = build_model(arch, num_classes=num_classes, **options)
    check_fit(net, state, arch, path)
    # check_fit is the strict check; num_batches_tracked may be absent from old checkpoints.
    try:
        net.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CifarbError(f"{path} does not load into --arch {arch} ({str(exc).splitlines()[0][:160]}); "
                          "the file is damaged or from another architecture") from None
    net.eval()
    return net


def check_fit(net: Any, state: Mapping[str, Any], arch: str, path: Path | str) -> None:
    """CifarbError if `state` has missing or unexpected keys, or shapes that differ from `net`'s."""
    own = net.state_dict()
    ignorable = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - ignorable)
    unexpected = sorted(k for k in set(state) - set(own) if not k.endswith("num_batches_tracked"))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:2])})")
    raise CifarbError(f"{path} does not fit --arch {arch}: {', '.join(parts)}; pass the architecture it was "
                      "trained with (and a dataset with the same number of classes)")


def _infer_classes(state: Mapping[str, Any]) -> int:
    """The output width of the last 2-D weight (the classifier head), used when the caller gives none."""
    heads = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    return int(heads[-1].shape[0]) if heads else 10


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
