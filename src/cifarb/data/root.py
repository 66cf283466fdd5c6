"""Where data lives: the data root (--root, $CIFARB_DATA, per-user cache) and the offline switch."""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """cifarb's per-user cache folder: $CIFARB_CACHE, else platformdirs' user cache dir for 'cifarb'."""
    env = os.environ.get("CIFARB_CACHE")
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cifarb")).absolute()


def resolve_root(root: str | Path | None = None) -> Path:
    """The data root: `root` (--root), else $CIFARB_DATA, else <cache>/data. Not created here."""
    if root is not None and str(root) != "":
        return Path(root).expanduser().absolute()
    env = os.environ.get("CIFARB_DATA")
    if env:
        return Path(env).expanduser().absolute()
    return cache_dir() / "data"


def is_offline(flag: bool = False) -> bool:
    """True when --offline was given or $CIFARB_OFFLINE is set to 1/true/yes/on."""
    return bool(flag) or os.environ.get("CIFARB_OFFLINE", "").strip().lower() in _TRUE
