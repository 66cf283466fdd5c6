"""One writer per folder: an OS lock (flock through `filelock`) beside the folder, with the holder's pid.

The lock of `path` is `<parent>/.<name>.lock`, so it exists before the folder does (a fresh run is built
under a temporary name and renamed into place) and never makes the folder "non-empty". The kernel
releases a flock when its holder dies, so a lock left by a killed process is free again at once: a
stale lock needs no clean-up. The holder's pid goes into `<parent>/.<name>.lock.pid` for the message a
second writer gets.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from cifarb.errors import CifarbError


def lock_path(folder: Path | str) -> Path:
    """Where the lock of `folder` lives (beside it)."""
    p = Path(folder).absolute()
    return p.parent / f".{p.name}.lock"


def holder_pid(folder: Path | str) -> int | None:
    """The pid recorded by the last holder of `folder`'s lock, if readable."""
    try:
        return int(Path(f"{lock_path(folder)}.pid").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """A non-blocking exclusive lock on `folder`; `acquire` raises CifarbError naming the holder's pid."""

    def __init__(self, folder: Path | str, what: str = "run directory") -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = lock_path(folder)
        self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False (and nothing changed) if another process holds it."""
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.path), timeout=0)
            lock.acquire()
        except Timeout:
            return False
        except OSError as exc:
            raise CifarbError(f"cannot lock {self.folder} ({self.path}: {exc.strerror or exc}); "
                              "choose a writable location") from None
        self._lock = lock
        with contextlib.suppress(OSError):
            Path(f"{self.path}.pid").write_text(f"{os.getpid()}\n", encoding="ascii")
        return True

    def busy_error(self) -> CifarbError:
        """The error a second writer gets: who holds the lock, and what to do."""
        pid = holder_pid(self.folder)
        who = f"process {pid}" if pid is not None else "another process"
        return CifarbError(
            f"{self.what} {self.folder} is in use: {who} is writing to it (lock {self.path}); wait for it "
            "to finish or stop it, then run again (a lock left by a killed process is released by the OS)"
        )

    def acquire(self) -> FolderLock:
        if not self.try_acquire():
            raise self.busy_error()
        return self

    def release(self) -> None:
        if self._lock is not None:
            # the lock file stays: deleting a flock file races with a process that has just opened it
            self._lock.release()
            self._lock = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
