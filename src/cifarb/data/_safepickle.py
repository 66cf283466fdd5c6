"""Restricted unpickling of the official CIFAR python batches: only numpy array reconstruction runs."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.errors import CifarbError

try:  # numpy >= 2 moved the internals; importing numpy.core there emits a DeprecationWarning
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]

import _codecs

# (module, name) -> object. Everything a CIFAR pickle needs (Python 2 or 3 protocol), nothing that
# can run arbitrary code: arrays (protocol 2 and 5 forms), dtypes, numpy scalars and the bytes
# re-encoding of protocol < 3.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # protocol 5 arrays
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` only resolves the numpy reconstruction helpers."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: not part of a CIFAR batch"
            ) from None


def loads_restricted(data: bytes) -> Any:
    """Unpickle `data` (Python 2 strings decoded as latin-1, like the official loaders)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def load_pickle_file(path: Path | str, fix: str) -> Any:
    """Restricted-unpickle a file; truncation or foreign content is a CifarbError naming it and `fix`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CifarbError(f"cannot read {p}: {exc.strerror or exc}; {fix}") from None
    try:
        return loads_restricted(data)
    except Exception as exc:  # noqa: BLE001 - any failure of a damaged pickle is a user-facing error
        raise CifarbError(
            f"{p} is truncated or not a CIFAR python batch ({type(exc).__name__}: {exc}); {fix}"
        ) from None
