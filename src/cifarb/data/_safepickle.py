"""Restricted unpickling of the official CIFAR python batches: only numpy array reconstruction runs."""

from __future__ import annotations

import io
import pickle
import pickletools
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


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def check_stream(data: bytes) -> None:
    """Walk the opcodes of `data` without building anything: every length must fit in the bytes that are
    there, and memo indices must stay below the opcode count. A flipped byte in a length or memo index
    would otherwise make the unpickler allocate gigabytes before it fails."""
    n_ops = 0
    for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
        n_ops += 1
        if op.name in _MEMO_OPS and (not isinstance(arg, int) or not 0 <= arg <= n_ops):
            raise pickle.UnpicklingError(f"memo index {arg!r} at opcode {n_ops} is out of range")
        if op.name == "STOP":
            return
    raise pickle.UnpicklingError("the pickle ends without a STOP opcode (truncated)")


def loads_restricted(data: bytes) -> Any:
    """Unpickle `data` (Python 2 strings decoded as latin-1, like the official loaders), after
    `check_stream`, with a restricted `find_class`."""
    check_stream(data)
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def load_pickle_file(path: Path | str, fix: str, max_bytes: int | None = None) -> Any:
    """Restricted-unpickle a file of at most `max_bytes`; truncation, foreign content or a file larger
    than expected is a CifarbError naming it and `fix`."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise CifarbError(f"{p} is {size:,} bytes, more than the {max_bytes:,} a CIFAR python batch can be; {fix}")
        data = p.read_bytes()
    except OSError as exc:
        raise CifarbError(f"cannot read {p}: {exc.strerror or exc}; {fix}") from None
    try:
        return loads_restricted(data)
    except Exception as exc:  # noqa: BLE001 - any failure of a damaged pickle is a user-facing error
        raise CifarbError(
            f"{p} is truncated or not a CIFAR python batch ({type(exc).__name__}: {exc}); {fix}"
        ) from None
