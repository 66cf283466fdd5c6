"""Pickle-free .npz I/O: byte-reproducible, atomic writes and reads that refuse object arrays."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cifarb._atomic import atomic_path
from cifarb.errors import CifarbError

# A fixed timestamp and mode make the archive bytes depend on the arrays only, so a rerun of a
# conversion script reproduces the committed asset exactly (and a test can check that it does).
_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path | str, arrays: dict[str, np.ndarray], compress: bool = True) -> Path:
    """Write `arrays` as an .npz (readable by `np.load(allow_pickle=False)`) atomically."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=method) as zf:
            for name, value in arrays.items():
                arr = np.asarray(value)
                if arr.dtype.hasobject:
                    raise ValueError(f"array {name!r} has dtype object; bundled files must not need pickle")
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
                info.compress_type = method
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as fh:
                    # not np.ascontiguousarray: it would turn 0-d arrays (scalar metadata) into 1-d
                    arr = arr if arr.flags.c_contiguous else arr.copy(order="C")
                    np.lib.format.write_array(fh, arr, allow_pickle=False)
    return Path(path)


def read_npz(path: Path | str, what: str = "file") -> dict[str, np.ndarray]:
    """Read every array of an .npz without pickle; damage becomes a CifarbError naming the file."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise CifarbError(f"{what} {p} is missing; reinstall cifarb (pip install -e .)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CifarbError(
            f"{what} {p} is damaged or not a pickle-free .npz ({exc}); reinstall cifarb"
        ) from None
