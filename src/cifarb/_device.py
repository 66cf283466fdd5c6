"""`--device NAME` -> a torch.device, checked to exist: the one resolver behind train, eval and the flows.

A malformed or unsupported name is a usage error (exit 2); a well-formed device this machine lacks (no
CUDA, too few GPUs, no MPS) is a CifarbError (exit 1). torch is imported only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cifarb.errors import CifarbError, UsageError

if TYPE_CHECKING:
    import torch


def resolve_device(requested: str | None = None, *, supported: Sequence[str] = ("cpu", "cuda", "mps"),
                   default_index: Callable[[], int] | None = None) -> torch.device:
    """`None`/'auto': CUDA when present, else CPU; otherwise the named device (case and spaces ignored).

    `supported` lists the device types the caller can run on; `default_index` gives a bare `cuda` its
    GPU index (a DDP process's local rank), called only when CUDA is there.
    """
    import torch

    req = (requested or "auto").strip().lower()
    if req == "auto":
        req = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(req)
    except RuntimeError:
        raise UsageError(f"unknown --device {requested!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in supported:
        raise UsageError(f"--device {requested!r} is not supported here; use auto, "
                         f"{', '.join(t for t in supported if t != 'cuda')}, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CifarbError(f"--device {requested}: no CUDA device is available here; use --device cpu")
        if dev.index is None and default_index is not None:
            dev = torch.device("cuda", default_index())
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CifarbError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise CifarbError(f"--device {requested}: MPS is not available here; use --device cpu")
    return dev
