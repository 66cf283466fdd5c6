"""The augmentation name registry: register_augmentation, lazy registration by module, and option checking."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cifarb.errors import CifarbError, did_you_mean

__all__ = ["register_augmentation", "get_factory", "available", "check_options", "LAZY", "GLOBAL_OPTIONS"]

# Names whose module registers them on import; imported only when the name is used, so a heavy module
# (FlowAug needs a flow) costs nothing to pipelines that do not use it.
LAZY: dict[str, str] = {"flowaug": "cifarb.augment.flowaug"}

# Options every pipeline understands (read by the pipeline itself, and passed to every factory).
GLOBAL_OPTIONS = frozenset({"mean", "std", "label_smoothing"})


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Any]
    options: frozenset[str] | None  # None: the piece did not declare its options


_REGISTRY: dict[str, _Entry] = {}


def register_augmentation(
    name: str, factory: Callable[..., Any], *, options: Iterable[str] | None = None
) -> None:
    """Register `factory(num_classes: int, **opts) -> Augmentation` under `name` (lower case, no '+').

    `options` names the keyword options the piece reads (by convention prefixed with its name); declared
    options let `build_pipeline` reject misspelt ones. Registering a name twice replaces the entry.
    """
    if not name or name != name.strip().lower() or "+" in name:
        raise ValueError(f"augmentation names are lower case without '+' or spaces, got {name!r}")
    _REGISTRY[name] = _Entry(factory, None if options is None else frozenset(options))


def _ensure_loaded(name: str) -> None:
    if name not in _REGISTRY and name in LAZY:
        importlib.import_module(LAZY[name])


def available() -> list[str]:
    """All augmentation names, registered or lazily registrable, sorted."""
    return sorted(set(_REGISTRY) | set(LAZY))


def get_factory(name: str) -> Callable[..., Any]:
    """The factory registered under `name`, importing its module first if it registers lazily."""
    try:
        _ensure_loaded(name)
    except ImportError as exc:
        raise CifarbError(f"augmentation {name!r} is not available: {exc}") from exc
    if name not in _REGISTRY:
        raise CifarbError(
            f"unknown augmentation {name!r}{did_you_mean(name, available())}; choose from: {', '.join(available())} "
            "(join with '+')"
        )
    return _REGISTRY[name].factory


def check_options(opts: Iterable[str]) -> None:
    """Raise CifarbError for an option no registered piece declares (a likely typo)."""
    known = set(GLOBAL_OPTIONS)
    open_prefixes = [f"{n}_" for n in LAZY if n not in _REGISTRY]
    for name, entry in _REGISTRY.items():
        if entry.options is None:
            open_prefixes.append(f"{name}_")
        else:
            known |= entry.options
    unknown = sorted(o for o in opts if o not in known and not any(o.startswith(p) for p in open_prefixes))
    if unknown:
        raise CifarbError(
            f"unknown augmentation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
