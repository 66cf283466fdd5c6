"""Optional dependencies (pip extras): which commands need which, and the one-line error when one is missing.

`pip install cifarb` gives `metrics`, `reference`, `report`, `compare`, `data fetch|verify|where` and
`cite`; models need `cifarb[torch]` and the corruption generator needs `cifarb[corruptions]`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from cifarb.errors import CifarbError

# extra -> the top-level modules it provides (import names, not distribution names)
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "torchvision"),
    "corruptions": ("cv2",),
}
MODULE_EXTRA: dict[str, str] = {mod: extra for extra, mods in EXTRAS.items() for mod in mods}

# commands (and `data`/`flow` actions) -> the extras they cannot run without
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "demo": ("torch",),
    "eval": ("torch",),
    "train": ("torch",),
    "flow": ("torch",),
    "data make-c": ("corruptions",),
}


class MissingExtraError(CifarbError):
    """An optional dependency is not installed; the message names the pip extra that provides it."""


def message(extra: str, what: str, module: str | None = None) -> str:
    """One line: what needs which module, and the pip command that installs its extra."""
    mod = (module or EXTRAS[extra][0]).split(".")[0]
    shown = "OpenCV (cv2)" if mod == "cv2" else mod
    return f"{what} needs {shown}, which is not installed: pip install 'cifarb[{extra}]'"


def missing_module(name: str | None) -> str | None:
    """The extra that provides module `name` (e.g. 'torch.nn' -> 'torch'), or None if it is no extra's."""
    return MODULE_EXTRA.get((name or "").split(".")[0])


def require(extras: Iterable[str], what: str) -> None:
    """Import each extra's modules; MissingExtraError naming the extra when one cannot be imported."""
    for extra in extras:
        for mod in EXTRAS[extra]:
            try:
                importlib.import_module(mod)
            except ImportError:
                raise MissingExtraError(message(extra, what, mod)) from None


def command_name(args: object) -> str:
    """'eval', or 'data make-c' for commands with actions: the key of COMMAND_EXTRAS."""
    name = str(getattr(args, "command", "") or "")
    action = getattr(args, f"{name.replace('-', '_')}_command", None)
    return f"{name} {action}" if action else name


def check_command(args: object) -> None:
    """Fail before any work when the command needs an extra that is not installed."""
    name = command_name(args)
    extras = COMMAND_EXTRAS.get(name) or COMMAND_EXTRAS.get(name.split(" ")[0], ())
    require(extras, f"`cifarb {name}`")
