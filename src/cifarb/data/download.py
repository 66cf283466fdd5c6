"""Verified downloads with pooch: progress, checksum, atomic placement, tar extraction, the sha256 record.

Files are downloaded into `<root>/.cifarb-downloads/`, verified, and only then renamed into place; archive
members are streamed into a temp file beside their target, checked against their published checksum and
renamed. An interrupted or failed fetch therefore leaves no file where a good one is expected, and a rerun
starts cleanly (a verified archive left over from a failed extraction is reused, not downloaded again).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import sys
import tarfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from cifarb._atomic import atomic_path, os_error_message
from cifarb.data.registry import Source, SourceFile, get_source
from cifarb.data.root import is_offline, resolve_root
from cifarb.data.verify import RECORD_NAME, digests, verify_source, write_record
from cifarb.errors import CifarbError

STAGING = ".cifarb-downloads"
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


def download_verified(urls: Sequence[str], dest: Path, *, algo: str | None, digest: str | None,
                      check: Callable[[Path], str | None] | None = None, progress: bool = True,
                      what: str = "") -> Path:
    """Download the first URL that works into `dest` (a staging path), verified; return `dest`.

    `algo:digest` is checked by pooch when it supports the algorithm; `check(path)` (returning an error
    text or None) runs after, for the other cases (git blob ids, sha256 prefixes). A URL that fails or
    gives the wrong bytes is skipped for the next mirror; a temp file never survives a failure.
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
            try:
                pooch.retrieve(url, known_hash=known, fname=dest.name, path=dest.parent, downloader=downloader)
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
                hashers = {a: hashlib.new(a) for a in dict.fromkeys(("sha256", sf.algo))}
                with atomic_path(target) as tmp:
                    with open(tmp, "wb") as out:
                        while chunk := fh.read(_CHUNK):
                            out.write(chunk)
                            for h in hashers.values():
                                h.update(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    got = hashers[sf.algo].hexdigest()
                    if got != sf.digest:  # raising here removes the temp file: nothing is placed
                        raise CifarbError(f"{member.name} in {archive} has {sf.algo} {got}, expected {sf.digest}; "
                                          f"delete {archive} and rerun `cifarb data fetch {source.name}`")
                done[sf.relpath] = {
                    "sha256": hashers["sha256"].hexdigest(), "size": member.size, "source": source.name,
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


def fetch(name: str | Source, root: str | Path | None = None, offline: bool = False, progress: bool = True,
          version: str | None = None, keep_archive: bool = False) -> list[Path]:
    """Make every file of data source `name` present and verified under the root; return their paths.

    Files already verified are left alone. Offline (`offline` or CIFARB_OFFLINE=1) nothing is downloaded:
    missing files raise OfflineError carrying the `where` text.
    """
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
    staging = root_p / STAGING
    _mkdir(staging)
    recorded: dict[str, dict] = {}
    if source.archive is not None and any(sf.member for sf in needed):
        a = source.archive
        archive = download_verified(a.urls, staging / a.filename, algo=a.algo, digest=a.digest,
                                    progress=progress, what=a.filename)
        recorded.update(_extract(archive, needed, root_p, source, progress))
        if not keep_archive:
            archive.unlink(missing_ok=True)
    for sf in needed:
        if sf.member:
            continue
        tmp = download_verified(sf.urls, staging / posixpath.basename(sf.relpath), algo=sf.algo,
                                digest=sf.digest, check=_hash_check(sf), progress=progress, what=sf.relpath)
        target = root_p / sf.relpath
        _mkdir(target.parent)
        entry = {"sha256": digests(tmp, ("sha256",))["sha256"], "size": tmp.stat().st_size,
                 "source": source.name, "verified_by": f"{sf.algo}:{sf.digest} (published)"}
        try:
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise CifarbError(os_error_message(target, exc)) from None
        recorded[sf.relpath] = entry
    write_record(root_p, recorded)
    if not any(staging.iterdir()):
        staging.rmdir()
    print(f"{source.name}: {len(recorded)} file(s) verified and placed under {root_p} "
          f"(sha256s recorded in {root_p / RECORD_NAME})", file=sys.stderr)
    return [root_p / sf.relpath for sf in source.files]
