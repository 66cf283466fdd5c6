"""Verified downloads with pooch: progress, checksum, atomic placement, tar extraction, the sha256 record.

Files are downloaded into a staging folder of this process, `<root>/.cifarb-downloads/<pid>-<tag>/`
(held under an OS lock), verified, and only then renamed into place; archive members are streamed into a
temp file beside their target, checked against their published checksum and renamed. An interrupted or
failed fetch therefore leaves no file where a good one is expected, and a rerun starts cleanly: staging
folders whose owner is dead (their lock is free) are taken over, so a verified archive left by a failed
extraction is reused, not downloaded again, and concurrent fetches into one root never touch each
other's files. The sha256 record is merged under a lock. A whole fetch has a deadline (`deadline_s`):
pooch's timeout is per read, and a server that trickles a byte every few seconds would never time out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import secrets
import shutil
import signal
import sys
import tarfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from cifarb._atomic import atomic_path, move_into_place, os_error_message
from cifarb._hashing import MultiDigest
from cifarb.data.registry import Source, SourceFile, get_source
from cifarb.data.root import is_offline, resolve_root
from cifarb.data.verify import RECORD_NAME, digests, verify_source, write_record
from cifarb.errors import CifarbError
from cifarb.runs.lock import FolderLock

STAGING = ".cifarb-downloads"
DEFAULT_DEADLINE_S = 3 * 3600.0  # a whole fetch; CIFAR-100-C (2.9 GB) needs ~300 kB/s to make it
_POOCH_ALGOS = ("md5", "sha1", "sha256")
_CHUNK = 1 << 20


class OfflineError(CifarbError):
    """Offline mode and files are missing: carries the `where` text the CLI prints."""

    def __init__(self, message: str, where_text: str) -> None:
        super().__init__(message)
        self.where_text = where_text


# ------------------------------------------------------------------------------------------ where


def where_lines(source: Source, root: Path | str) -> list[str]:
    """One `PATH SIZE_OR_- ALGO:HEX URL` line per file that must end up on disk."""
    root = Path(root)
    return [f"{root / f.relpath} {f.size if f.size is not None else '-'} {f.algo}:{f.digest} {f.url}"
            for f in source.files]


def manual_steps(source: Source, root: Path | str) -> list[str]:
    """How to put the files in place by hand (comment lines, for machines without network)."""
    root = Path(root)
    version = f" --version {source.version}" if source.version and source.version != "v6" else ""
    steps = [f"# {source.title or source.name}: manual steps (on a machine without network, copy the "
             "downloads over)"]
    if source.archive is not None:
        a = source.archive
        size = f"{a.size:,} bytes, " if a.size else ""
        steps.append(f"#   1. download {a.url} ({size}{a.algo} {a.digest})")
        steps += [f"#      mirror: {m}" for m in a.mirrors]
        flag = "-xzf" if a.filename.endswith((".tar.gz", ".tgz")) else "-xf"
        steps.append(f"#   2. tar {flag} {a.filename} -C {root}   (creates {root / source.folder}/)")
    else:
        steps.append(f"#   1. download each URL above into {root / source.folder}/ (mirrors: "
                     + ", ".join(m for f in source.files for m in f.mirrors[:1]) + ")")
        steps.append("#   2. (nothing to extract)")
    steps.append(f"#   3. cifarb data verify {source.name}{version} --root {root}   (every line must say OK)")
    steps += [f"# note: {n}" for n in source.notes]
    steps.append(f"# licence: {source.license}")
    return steps


def where_text(source: Source, root: Path | str) -> str:
    return "\n".join(where_lines(source, root) + manual_steps(source, root)) + "\n"


# ------------------------------------------------------------------------------------------ download


def _bar(progress: bool, desc: str, total: int | None = None):
    """A tqdm bar on stderr, or None when progress is off or stderr is not a terminal."""
    if not progress or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                leave=False)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


class _DeadlinePassed(BaseException):
    """Raised by the alarm inside a blocking read; a BaseException so no library's `except Exception` eats it."""


@contextlib.contextmanager
def _alarm(seconds: float | None):
    """Interrupt the block after `seconds` with _DeadlinePassed (SIGALRM: Unix, main thread only)."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _DeadlinePassed()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(0.001, float(seconds)))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def deadline_message(what: str, url: str, deadline_s: float) -> str:
    return (f"downloading {what} from {url} did not finish within the {deadline_s:g} s deadline of this fetch "
            "(the server is too slow or stalled); nothing was placed. Rerun later, give more time with "
            "--deadline SECONDS (0: no limit), or download it by hand (`cifarb data where`)")


def download_verified(urls: Sequence[str], dest: Path, *, algo: str | None, digest: str | None,
                      check: Callable[[Path], str | None] | None = None, progress: bool = True,
                      what: str = "", deadline_at: float | None = None, deadline_s: float | None = None) -> Path:
    """Download the first URL that works into `dest` (a staging path), verified; return `dest`.

    `algo:digest` is checked by pooch when it supports the algorithm; `check(path)` (returning an error
    text or None) runs after, for the other cases (git blob ids, sha256 prefixes). A URL that fails or
    gives the wrong bytes is skipped for the next mirror; a temp file never survives a failure.
    `deadline_at` (time.monotonic()) ends the whole attempt with one CifarbError naming `--deadline`.
    """
    import pooch
    import requests

    known = f"{algo}:{digest}" if algo in _POOCH_ALGOS and digest else None
    if known is None:
        dest.unlink(missing_ok=True)  # pooch would trust an existing file it cannot check
    errors: list[str] = []
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # we print our own one-line messages
    try:
        for url in urls:
            print(f"downloading {url}", file=sys.stderr)
            # total=1 until pooch sets the real one: pooch tests the bar's truth value, and tqdm
            # raises on bool() of a bar with no total
            bar = _bar(progress, dest.name, total=1)
            downloader = pooch.HTTPDownloader(progressbar=bar if bar is not None else False,
                                              chunk_size=1 << 16, timeout=60)
            remaining = None if deadline_at is None else deadline_at - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise _DeadlinePassed()
                with _alarm(remaining):
                    pooch.retrieve(url, known_hash=known, fname=dest.name, path=dest.parent, downloader=downloader)
            except _DeadlinePassed:
                raise CifarbError(deadline_message(what or dest.name, url, deadline_s or 0)) from None
            except ValueError as exc:  # pooch: hash mismatch (the temp file is already deleted)
                errors.append(f"{url}: wrong checksum ({_short(exc)})")
                continue
            except requests.exceptions.RequestException as exc:
                errors.append(f"{url}: {_short(exc)}")
                continue
            except OSError as exc:
                raise CifarbError(os_error_message(dest, exc)) from None
            finally:
                if bar is not None:
                    bar.close()
            problem = check(dest) if check is not None else None
            if problem:
                dest.unlink(missing_ok=True)
                errors.append(f"{url}: {problem}")
                continue
            return dest
    finally:
        logger.setLevel(level)
    raise CifarbError(
        f"could not download a verified copy of {what or dest.name}; nothing was placed. Tried: "
        + "; ".join(errors)
        + ". Check the network and rerun, or follow the manual steps of `cifarb data where`"
    )


def _hash_check(sf: SourceFile) -> Callable[[Path], str | None]:
    def check(path: Path) -> str | None:
        got = digests(path, (sf.algo,))[sf.algo]
        return None if got == sf.digest else f"{sf.algo} is {got}, expected {sf.digest}; the download was discarded"

    return check


def _extract(archive: Path, needed: list[SourceFile], root: Path, source: Source, progress: bool) -> dict[str, dict]:
    """Stream the needed members of a tar archive into place, each verified before its rename."""
    want = {posixpath.normpath(sf.member): sf for sf in needed if sf.member}
    done: dict[str, dict] = {}
    bar = _bar(progress, f"extract {archive.name}")
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                sf = want.get(posixpath.normpath(member.name))
                if sf is None or sf.relpath in done:
                    continue
                if not member.isfile():
                    raise CifarbError(f"{archive}: member {member.name} is not a regular file; delete "
                                      f"{archive} and rerun `cifarb data fetch {source.name}`")
                fh = tar.extractfile(member)
                assert fh is not None
                target = root / sf.relpath
                hashed = MultiDigest(("sha256", sf.algo), size=member.size)
                with atomic_path(target) as tmp:
                    with open(tmp, "wb") as out:
                        while chunk := fh.read(_CHUNK):
                            out.write(chunk)
                            hashed.update(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    got = hashed.hexdigests()[sf.algo]
                    if got != sf.digest:  # raising here removes the temp file: nothing is placed
                        raise CifarbError(f"{member.name} in {archive} has {sf.algo} {got}, expected {sf.digest}; "
                                          f"delete {archive} and rerun `cifarb data fetch {source.name}`")
                done[sf.relpath] = {
                    "sha256": hashed.hexdigests()["sha256"], "size": member.size, "source": source.name,
                    "verified_by": f"{sf.algo}:{sf.digest} (published)",
                    "archive": f"{archive.name} {source.archive.algo}:{source.archive.digest}" if source.archive else "",
                }
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise CifarbError(f"{archive} is not a readable tar archive ({_short(exc)}); delete it and rerun "
                          f"`cifarb data fetch {source.name}`") from None
    finally:
        if bar is not None:
            bar.close()
    missing = [sf.member for m, sf in want.items() if sf.relpath not in done]
    if missing:
        raise CifarbError(f"{archive} does not contain {', '.join(str(m) for m in missing)}; it is not the "
                          f"expected archive. Delete it and rerun `cifarb data fetch {source.name}`")
    return done


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CifarbError(os_error_message(path, exc)) from None


def _deadline_at(deadline_s: float | None) -> float | None:
    if deadline_s is not None and (not isinstance(deadline_s, (int, float)) or deadline_s < 0):
        raise CifarbError(f"--deadline must be a number of seconds >= 0 (0: no limit), got {deadline_s!r}")
    return time.monotonic() + deadline_s if deadline_s else None


@contextlib.contextmanager
def staging_folder(base: Path):
    """This process's own staging folder under `base`, held under an OS lock for its life.

    Folders of dead owners (lock free) are taken over first: one is renamed to ours, so its verified
    downloads are reused; the others are removed. Folders of live fetches are never touched. On exit an
    empty folder is removed; one that still holds a (verified) download stays for the next run.
    """
    _mkdir(base)
    mine = base / f"{os.getpid()}-{secrets.token_hex(4)}"
    lock = FolderLock(mine, "download staging folder")
    lock.acquire()  # before the folder exists, so no other cleaner can ever see it unlocked
    try:
        for other in sorted(base.iterdir()):
            if other == mine or not other.is_dir():
                continue
            their = FolderLock(other)
            if not their.try_acquire():
                continue  # a live fetch: its files are its own
            try:
                if not mine.exists():
                    os.replace(other, mine)
                else:
                    shutil.rmtree(other, ignore_errors=True)
            except OSError:
                pass
            finally:
                their.release()
                _remove_lock_files(their)
        _mkdir(mine)
        yield mine
    finally:
        with contextlib.suppress(OSError):
            mine.rmdir()  # only when empty: a verified archive stays for the next run to take over
        lock.release()
        _remove_lock_files(lock)
        with contextlib.suppress(OSError):
            base.rmdir()  # fails while another fetch or the record lock is there: fine


def _remove_lock_files(lock: FolderLock) -> None:
    for p in (lock.path, Path(f"{lock.path}.pid")):
        with contextlib.suppress(OSError):
            p.unlink()


def _write_record_locked(root: Path, entries: dict[str, dict]) -> None:
    """Merge entries into the record while no other fetch is merging (read-modify-write under a lock)."""
    from filelock import FileLock, Timeout

    # the lock file stays (deleting a flock file races with a process waiting on it)
    lock_file = root / STAGING / ".record.lock"
    _mkdir(lock_file.parent)
    try:
        with FileLock(str(lock_file), timeout=120):
            write_record(root, entries)
    except Timeout:
        raise CifarbError(f"another fetch has held {lock_file} for 2 minutes; rerun this fetch when it has finished") from None


def fetch(name: str | Source, root: str | Path | None = None, offline: bool = False, progress: bool = True,
          version: str | None = None, keep_archive: bool = False,
          deadline_s: float | None = DEFAULT_DEADLINE_S) -> list[Path]:
    """Make every file of data source `name` present and verified under the root; return their paths.

    Files already verified are left alone. Offline (`offline` or CIFARB_OFFLINE=1) nothing is downloaded:
    missing files raise OfflineError carrying the `where` text. The downloads of one call must finish
    within `deadline_s` seconds (None or 0: no limit).
    """
    deadline_at = _deadline_at(deadline_s)
    source = name if isinstance(name, Source) else get_source(name, version)
    root_p = resolve_root(root)
    checks = verify_source(source, root_p)
    needed = [sf for sf, c in zip(source.files, checks) if not c.ok]
    if not needed:
        return [c.path for c in checks]
    if is_offline(offline):
        raise OfflineError(
            f"{len(needed)} of the {len(source.files)} files of {source.name} are missing or unverified under "
            f"{root_p}, and offline mode is on (--offline or CIFARB_OFFLINE=1), so nothing was downloaded. "
            "Put the files in place as listed above, then run `cifarb data verify`",
            where_text(source, root_p),
        )
    for c in checks:
        if c.status == "MISMATCH":
            print(f"replacing unverified {c.path}", file=sys.stderr)
    recorded: dict[str, dict] = {}
    with staging_folder(root_p / STAGING) as staging:
        if source.archive is not None and any(sf.member for sf in needed):
            a = source.archive
            archive = download_verified(a.urls, staging / a.filename, algo=a.algo, digest=a.digest,
                                        progress=progress, what=a.filename, deadline_at=deadline_at,
                                        deadline_s=deadline_s)
            recorded.update(_extract(archive, needed, root_p, source, progress))
            if not keep_archive:  # a kept archive stays in the staging folder; the next fetch takes it over
                archive.unlink(missing_ok=True)
        for sf in needed:
            if sf.member:
                continue
            tmp = download_verified(sf.urls, staging / posixpath.basename(sf.relpath), algo=sf.algo,
                                    digest=sf.digest, check=_hash_check(sf), progress=progress, what=sf.relpath,
                                    deadline_at=deadline_at, deadline_s=deadline_s)
            target = root_p / sf.relpath
            _mkdir(target.parent)
            entry = {"sha256": digests(tmp, ("sha256",))["sha256"], "size": tmp.stat().st_size,
                     "source": source.name, "verified_by": f"{sf.algo}:{sf.digest} (published)"}
            move_into_place(tmp, target)
            recorded[sf.relpath] = entry
        _write_record_locked(root_p, recorded)
    print(f"{source.name}: {len(recorded)} file(s) verified and placed under {root_p} "
          f"(sha256s recorded in {root_p / RECORD_NAME})", file=sys.stderr)
    return [root_p / sf.relpath for sf in source.files]
