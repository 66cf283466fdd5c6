"""`cifarb convert-checkpoint`: rewrite an old checkpoint, knowingly, so it loads with weights_only=True.

This is the one place cifarb ever unpickles in full, and only with --trust-this-file: unpickling a file
can run any code its author put in it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Convert an old checkpoint (one that holds Python objects such as numpy arrays, e.g. a cifarb training
checkpoint written before weights-only loading) into a torch file that loads with weights_only=True:
numpy arrays become tensors, numpy scalars and paths become plain values, modules become state dicts.

Every other cifarb command reads checkpoints with torch's weights-only unpickler, so a file from
anyone cannot run code. This command is the exception: it unpickles FILE in full, which runs whatever
code FILE contains. Run it only on a file whose origin you trust (your own old run), and only with
--trust-this-file. The result is verified by loading it weights-only before it replaces anything.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert-checkpoint",
        help="rewrite an old checkpoint you trust so it loads weights-only (runs its code: use knowingly)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="the old checkpoint (e.g. RUNDIR/checkpoints/last.pt)")
    p.add_argument("--out", metavar="NEW.pt", help="write the converted file here (default: replace FILE)")
    p.add_argument("--trust-this-file", action="store_true",
                   help="required: you trust FILE's origin, because unpickling it runs its code")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarb.errors import CifarbError, UsageError

    src = Path(args.file)
    if not args.trust_this_file:
        raise UsageError(
            f"convert-checkpoint unpickles {src} in full, which runs any code it contains; if you trust where "
            f"it came from, run again with --trust-this-file"
        )
    if not src.is_file():
        raise CifarbError(f"{src} is not a file; give the checkpoint to convert")
    dst = Path(args.out) if args.out else src
    if dst.is_dir():
        raise UsageError(f"--out {dst} is a directory; give a file path")
    converted, notes = convert_file(src, dst)
    what = "; ".join(notes) if notes else "nothing needed converting"
    print(f"converted {src} -> {converted} ({what}); it now loads with weights_only=True")
    return 0


def convert_file(src: Path, dst: Path) -> tuple[Path, list[str]]:
    """Unpickle `src` in full (trusted by the caller), make it weights-only-safe, verify, write `dst`."""
    import io

    import torch

    from cifarb._atomic import atomic_write_bytes
    from cifarb.errors import CifarbError

    try:
        payload = torch.load(src, map_location="cpu", weights_only=False)  # the caller trusts this file
    except Exception as exc:  # noqa: BLE001 - any failure of a damaged file is a user-facing error
        raise CifarbError(f"{src} cannot be read as a torch checkpoint ({exc.__class__.__name__}: "
                          f"{str(exc)[:120]}); it is damaged or not a checkpoint") from None
    notes: list[str] = []
    safe = to_weights_only(payload, notes, "")
    buf = io.BytesIO()
    torch.save(safe, buf)
    try:
        torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a bug here must not write a file that cannot be read
        from cifarb.runs.rundir import _refusal_reason

        raise CifarbError(f"{src}: the converted checkpoint still does not load weights-only "
                          f"({_refusal_reason(str(exc))}); it was not written") from None
    atomic_write_bytes(dst, buf.getvalue())
    return dst, sorted(set(notes))


def to_weights_only(obj: Any, notes: list[str], where: str) -> Any:
    """`obj` with every value the weights-only unpickler refuses replaced by a plain equivalent."""
    import numpy as np
    import torch

    from cifarb.errors import CifarbError

    if isinstance(obj, np.generic):  # before the plain types: np.float64 is a float subclass
        notes.append("numpy scalars -> Python numbers")
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, torch.Tensor, torch.dtype,
                                       torch.device, torch.Size)):
        return obj
    if _is_numpy_rng_state(obj):
        notes.append("numpy RNG state -> dict of plain values")
        kind, key, pos, has_gauss, cached = obj
        return {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)), "pos": int(pos),
                "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    if isinstance(obj, dict):
        return {to_weights_only(k, notes, where): to_weights_only(v, notes, f"{where}/{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_weights_only(v, notes, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, np.ndarray):
        notes.append("numpy arrays -> tensors")
        if obj.dtype.kind in "bifc" or obj.dtype == np.uint8:
            return torch.from_numpy(np.ascontiguousarray(obj))
        if obj.dtype.kind == "u":  # torch's wider unsigned types are barely supported
            return torch.from_numpy(np.ascontiguousarray(obj).astype(np.int64))
        return to_weights_only(obj.tolist(), notes, where)
    if isinstance(obj, Path):
        notes.append("paths -> strings")
        return str(obj)
    if isinstance(obj, torch.nn.Module):
        notes.append("modules -> state dicts")
        return {k: v.detach().cpu() for k, v in obj.state_dict().items()}
    raise CifarbError(f"cannot convert the {type(obj).__module__}.{type(obj).__qualname__} at "
                      f"{where or 'the top level'}: cifarb only converts tensors, numpy values, paths, modules "
                      "and plain containers")


def _is_numpy_rng_state(obj: Any) -> bool:
    import numpy as np

    return (isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "MT19937" and isinstance(obj[1], np.ndarray)
            and obj[1].shape == (624,))
