"""Reading untrusted array and table files with bounded memory and one clear error.

Every size is checked before anything is allocated: a `.npy` header must describe exactly the bytes the
file holds (and at most `max_items` items, no Python objects); an `.npz` member is checked the same way
from its zip entry before it is decompressed; a CSV is read with caps on its rows and line length; a
parquet file's row count comes from its footer. numpy and pandas only ever see inputs that passed.
"""

from __future__ import annotations

import io
import math
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from cifarb.errors import CifarbError

NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10_000  # numpy's own default cap on a .npy header (a header is ~100 bytes)


def _kind_of(head: bytes) -> str:
    if head.startswith(b"PK"):
        return "an .npz (zip) archive, not a .npy file"
    return "not a .npy file (no NUMPY magic)"


def _read_error(exc: Exception, path: Path, what: str, fix: str) -> CifarbError:
    """The one message for a file numpy/zipfile could not read: our own errors pass through unchanged."""
    if isinstance(exc, CifarbError):
        return exc
    if isinstance(exc, MemoryError):
        return CifarbError(f"cannot read {path}: too large to read into memory; {fix}")
    reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return CifarbError(f"cannot read {path}: {what} ({reason}); {fix}")


def read_npy_header(fh: IO[bytes], data_bytes: int, where: str, fix: str,
                    max_items: int | None = None) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse a .npy header from `fh` and check it against the `data_bytes` that follow it in the file.

    Returns (shape, fortran_order, dtype); CifarbError for a foreign, damaged, oversized or pickled array.
    """
    head = fh.read(6)
    if head != NPY_MAGIC:
        raise CifarbError(f"cannot read {where}: it is {_kind_of(head)}; {fix}")
    try:
        with warnings.catch_warnings():  # numpy's header parser may warn on garbage: the error below says it
            warnings.simplefilter("ignore")
            version = tuple(fh.read(2))
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=_MAX_HEADER)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=_MAX_HEADER)
            else:
                raise ValueError(f"unknown .npy format version {version}")
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/SyntaxError/... for a bad header
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CifarbError(f"cannot read {where}: its .npy header is damaged ({reason}); {fix}") from None
    if dtype.hasobject:
        raise CifarbError(f"cannot read {where}: it holds Python objects (dtype {dtype}), which cifarb never "
                          f"unpickles; {fix}")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CifarbError(f"cannot read {where}: its .npy header is damaged (shape {shape}); {fix}")
    items = math.prod(shape)
    if max_items is not None and items > max_items:
        raise CifarbError(f"{where} holds an array of shape {shape} ({items:,} values), more than the "
                          f"{max_items:,} expected here; {fix}")
    expected = items * dtype.itemsize
    offset = fh.tell()
    if data_bytes - offset != expected:
        raise CifarbError(f"cannot read {where}: its header describes a {dtype} array of shape {shape} ({expected:,} bytes), "
                          f"but the file holds {max(0, data_bytes - offset):,} bytes after the header: it is "
                          f"truncated or damaged; {fix}")
    return shape, fortran, dtype


def load_npy(path: Path | str, fix: str, mmap: bool = False, max_items: int | None = None) -> np.ndarray:
    """`np.load(path, allow_pickle=False)` after checking the header against the file size."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            read_npy_header(fh, size, str(p), fix, max_items)
        return np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, EOFError, ... of a damaged file
        raise _read_error(exc, p, "truncated or not a valid .npy file", fix) from None


def load_npz_member(path: Path | str, name: str, fix: str, max_items: int | None = None) -> np.ndarray:
    """One array of an .npz, checked from its zip entry (size, header) before it is decompressed."""
    p = Path(path)
    member = name if name.endswith(".npy") else f"{name}.npy"
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
            if member not in names:
                found = ", ".join(n[:-4] if n.endswith(".npy") else n for n in names[:20]) or "none"
                raise CifarbError(f"{p}: has no array named {name!r} (found: {found}); {fix}")
            info = zf.getinfo(member)
            with zf.open(info) as fh:
                header = fh.read(_MAX_HEADER + 12)
            shape, fortran, dtype = read_npy_header(io.BytesIO(header), info.file_size, f"{p} ({member})", fix,
                                                    max_items)
            # the declared size is checked; the actual stream is read with a cap so a lying entry cannot grow
            with zf.open(info) as fh:
                raw = fh.read(info.file_size + 1)
            if len(raw) != info.file_size:
                raise CifarbError(f"cannot read {p} ({member}): truncated or damaged; {fix}")
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, ValueError, ... of a damaged archive
        raise _read_error(exc, p, "damaged or not a pickle-free .npz", fix) from None


def read_csv_bounded(path: Path | str, max_rows: int, fix: str, max_line: int = 1 << 20,
                     max_bytes: int = 64 << 20) -> Any:
    """A pandas DataFrame of a CSV with a header and at most `max_rows` data rows; a longer file, a line
    over `max_line` bytes or more than `max_bytes` in all is refused before pandas parses anything."""
    import pandas as pd

    p = Path(path)
    buf = io.BytesIO()
    rows = -1  # the header line does not count
    try:
        with open(p, "rb") as fh:
            while True:
                line = fh.readline(max_line + 1)
                if not line:
                    break
                if len(line) > max_line:
                    raise CifarbError(f"{p}: line {rows + 2} is longer than {max_line:,} bytes; not a predictions "
                                      f"CSV; {fix}")
                if line.strip(b"\r\n\t ,\x00"):
                    rows += 1
                if rows > max_rows:
                    raise CifarbError(f"{p}: more than {max_rows:,} rows, more than the test set holds; {fix}")
                buf.write(line)
                if buf.tell() > max_bytes:
                    raise CifarbError(f"{p} is larger than {max_bytes >> 20} MiB; not a predictions CSV; {fix}")
    except OSError as exc:
        raise CifarbError(f"cannot read {p}: {exc.strerror or exc}") from None
    buf.seek(0)
    return pd.read_csv(buf)


def read_parquet_bounded(path: Path | str, max_rows: int, fix: str) -> Any:
    """A pandas DataFrame of a parquet file whose footer says it has at most `max_rows` rows."""
    import pandas as pd
    import pyarrow.parquet as pq

    p = Path(path)
    n = pq.ParquetFile(p).metadata.num_rows
    if n > max_rows:
        raise CifarbError(f"{p}: {n:,} rows, more than the {max_rows:,} the test set holds; {fix}")
    return pd.read_parquet(p)
