"""Atomic file writes: write to a temp file in the target folder, fsync, then rename (`move_into_place`).

A crash, a full disk or a read-only folder never leaves a half-written file where a good one is expected;
OS errors become CifarbError naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cifarb.errors import CifarbError


def os_error_message(path: Path | str, exc: OSError) -> str:
    """A one-line explanation of an OSError while writing `path`, with the fix."""
    code = exc.errno
    if code == errno.ENOSPC:
        return f"no space left on the device while writing {path}: free some space or choose another location"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {path}: the location is read-only or not writable; choose a writable location"
    if code == errno.EISDIR:
        return f"cannot write {path}: it is a directory; give a file path"
    return f"cannot write {path}: {exc.strerror or exc}"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure remove it."""
    target = Path(path)
    if target.is_dir():
        raise CifarbError(f"cannot write {target}: it is a directory; give a file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
        # mkstemp creates 0600; give the final file the mode a plain open() would (0666 minus umask)
        os.fchmod(fd, 0o666 & ~_current_umask())
        os.close(fd)
    except OSError as exc:
        raise CifarbError(os_error_message(target, exc)) from None
    tmp = Path(tmp_name)
    with _removed_on_failure(tmp, target):
        yield tmp
    move_into_place(tmp, target)


def move_into_place(tmp: Path | str, target: Path | str) -> Path:
    """Flush the finished (verified) file `tmp` to disk and rename it onto `target`, on the same file system.

    The target's folder is created if needed. On failure `tmp` is removed and the OSError becomes a
    CifarbError naming `target`: either the whole new file is in place or nothing changed.
    """
    tmp, target = Path(tmp), Path(target)
    with _removed_on_failure(tmp, target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    return target


@contextlib.contextmanager
def _removed_on_failure(tmp: Path, target: Path) -> Iterator[None]:
    """Remove `tmp` if the block fails; an OSError becomes a CifarbError naming `target` and the fix."""
    try:
        yield
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CifarbError(os_error_message(target, exc)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    """Write `obj` as indented JSON (NaN is refused: undefined values must be null) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")
