"""File digests: md5/sha256 as published, and git blob ids (how CIFAR-10.1 files are verified)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_digest(path: Path | str, algo: str = "sha256") -> str:
    """Hex digest of a file with `algo` ('md5', 'sha256', 'sha1' or 'gitblob')."""
    if algo == "gitblob":
        return git_blob_sha1(path)
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1(path: Path | str) -> str:
    """The git blob id of a file: sha1(b"blob <size>\\0" + content)."""
    p = Path(path)
    h = hashlib.sha1()
    h.update(b"blob %d\0" % p.stat().st_size)
    with open(p, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
