"""When to show progress bars: on a terminal or in a Jupyter kernel, never into a log file or a pipe.

Bars are `tqdm.auto` bars (widgets in a notebook, text on a terminal); `show_progress(True)` is False
when stderr is redirected, so CI logs and `2> file` stay clean.
"""

from __future__ import annotations

import sys
from typing import Any


def in_notebook() -> bool:
    """True inside a Jupyter/IPython kernel (where stderr is no terminal but bars still render)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a broken IPython install must not break a command
        return False
    return shell is not None and hasattr(shell, "kernel")


def show_progress(progress: bool = True, stream: Any = None) -> bool:
    """Whether a bar asked for with `progress` should be drawn on `stream` (default stderr)."""
    if not progress:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        tty = False
    return tty or in_notebook()


def progress_bar(total: int | None, desc: str, *, unit: str = "it", progress: bool = True, **kwargs: Any) -> Any:
    """A `tqdm.auto` bar on stderr, disabled unless `show_progress(progress)`; the one bar every long step
    draws. `kwargs` go to tqdm and win over the defaults (`iterable=`, `leave=True`, `unit_scale=`, ...)."""
    from tqdm.auto import tqdm

    options: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "file": sys.stderr, "leave": False,
                               "dynamic_ncols": True, "disable": not show_progress(progress)}
    return tqdm(**{**options, **kwargs})
