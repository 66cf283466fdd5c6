"""Checksum verification of local data files and the `<root>/.cifarb-verified.json` download record."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cifarb._atomic import atomic_write_json
from cifarb._hashing import file_digests
from cifarb.data.registry import Source, SourceFile, find_registered

RECORD_NAME = ".cifarb-verified.json"
RECORD_FORMAT = "cifarb-verified/1"

# (path, inode, size, mtime_ns, ctime_ns) -> {algo: hex}: avoids re-hashing an unchanged large file
# (a -C set is 3 GB) when a process loads it more than once.
_MEMO: dict[tuple[str, int, int, int, int], dict[str, str]] = {}


def digests(path: Path | str, algos: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file for several algorithms ('md5', 'sha1', 'sha256', 'gitblob') in one pass,
    remembered while the file is unchanged."""
    p = Path(path)
    st = p.stat()
    key = (str(p.absolute()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    known = _MEMO.setdefault(key, {})
    wanted = [a for a in dict.fromkeys(algos) if a not in known]
    if wanted:
        known.update(file_digests(p, wanted))
    return {a: known[a] for a in algos}


def sha256_of(path: Path | str) -> str:
    """sha256 hex of a file (remembered while the file is unchanged)."""
    return digests(path, ("sha256",))["sha256"]


@dataclass(frozen=True)
class FileCheck:
    """The verification status of one expected file: OK, MISMATCH or MISSING."""

    status: str
    path: Path
    relpath: str
    sha256: str | None = None
    how: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    def line(self) -> str:
        return f"{self.status} {self.path}"


def read_record(root: Path | str) -> dict[str, dict]:
    """The files recorded as verified under `root` ({relpath: entry}); a missing or damaged record is empty."""
    path = Path(root) / RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data.get("files", {}) if data.get("format") == RECORD_FORMAT else {}
        return {k: v for k, v in files.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}
    except (OSError, ValueError, AttributeError):
        return {}


def write_record(root: Path | str, entries: dict[str, dict]) -> Path:
    """Merge `entries` ({relpath: {"sha256", "size", ...}}) into the record, atomically."""
    root = Path(root)
    files = read_record(root)
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    for rel, entry in entries.items():
        files[rel] = {**entry, "recorded": now}
    return atomic_write_json(root / RECORD_NAME, {"format": RECORD_FORMAT, "files": dict(sorted(files.items()))})


def check_file(root: Path | str, sf: SourceFile | None, relpath: str | None = None,
               record: dict[str, dict] | None = None) -> FileCheck:
    """Check `<root>/<relpath>` against its published checksum, else against the verified-download record."""
    rel = sf.relpath if sf is not None else str(relpath)
    path = Path(root) / rel
    if not path.is_file():
        return FileCheck("MISSING", path, rel)
    algos = ["sha256"]
    if sf is not None:
        algos.append(sf.algo)
        algos += [a for a, _ in sf.extra]
    got = digests(path, algos)
    if sf is not None and got[sf.algo] == sf.digest:
        return FileCheck("OK", path, rel, got["sha256"], f"{sf.checksum} as published")
    if sf is not None:
        for algo, hexd in sf.extra:
            if got[algo] == hexd:
                return FileCheck("OK", path, rel, got["sha256"], f"{algo}:{hexd} as published")
    rec = (record if record is not None else read_record(root)).get(rel)
    if rec and rec.get("sha256") == got["sha256"]:
        return FileCheck("OK", path, rel, got["sha256"], f"sha256 in {RECORD_NAME}")
    return FileCheck("MISMATCH", path, rel, got["sha256"],
                     f"expected {sf.checksum}" if sf is not None else "no published checksum and not recorded")


def verify_source(source: Source, root: Path | str) -> list[FileCheck]:
    """One FileCheck per file of `source`, in registry order."""
    record = read_record(root)
    return [check_file(root, sf, record=record) for sf in source.files]


def check_local(root: Path | str, relpath: str) -> FileCheck:
    """Check any file under the data root: registered files by their checksum, others by the record only."""
    return check_file(root, find_registered(relpath), relpath=relpath)
