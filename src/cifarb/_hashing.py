"""File digests: md5/sha1/sha256 as published, and git blob ids (how CIFAR-10.1 files are verified).

Every file hash in cifarb is computed here: one read of the file feeds every algorithm asked for.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cifarb.errors import CifarbError

_CHUNK = 1 << 22


class MultiDigest:
    """Several digests of one byte stream fed once: `update(chunk)` as the bytes pass, then `hexdigests()`.

    'gitblob' (sha1 of b"blob <size>\\0" + content) needs the stream's `size` up front.
    """

    def __init__(self, algos: Iterable[str], size: int | None = None) -> None:
        self._hashers = {}
        for algo in dict.fromkeys(algos):
            if algo == "gitblob":
                if size is None:
                    raise ValueError("a git blob id needs the size of the content")
                h = hashlib.sha1()
                h.update(b"blob %d\0" % size)
            else:
                h = hashlib.new(algo)
            self._hashers[algo] = h

    def update(self, chunk: bytes) -> None:
        for h in self._hashers.values():
            h.update(chunk)

    def hexdigests(self) -> dict[str, str]:
        return {algo: h.hexdigest() for algo, h in self._hashers.items()}


def file_digests(path: Path | str, algos: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """{algo: hex} of a file for several algorithms ('md5', 'sha1', 'sha256', 'gitblob') in one read."""
    with open(path, "rb") as fh:
        digest = MultiDigest(algos, size=os.fstat(fh.fileno()).st_size)
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigests()


def file_digest(path: Path | str, algo: str = "sha256") -> str:
    """Hex digest of a file with `algo` ('md5', 'sha256', 'sha1' or 'gitblob')."""
    return file_digests(path, (algo,))[algo]


def git_blob_sha1(path: Path | str) -> str:
    """The git blob id of a file: sha1(b"blob <size>\\0" + content)."""
    return file_digest(path, "gitblob")


def sha256_file(path: Path | str) -> str:
    """sha256 hex of a file; an unreadable file is a CifarbError naming it."""
    try:
        return file_digest(path, "sha256")
    except OSError as exc:
        raise CifarbError(f"cannot read {path}: {exc.strerror or exc}") from None
