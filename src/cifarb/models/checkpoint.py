"""Checkpoint files read safely into state dicts, checked against an architecture and loaded into it.

Torch files are only ever unpickled with `weights_only=True` (docs/security.md): no checkpoint, wherever it
comes from, can run code. Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cifarb.errors import CifarbError


def load_state_dict(path: Path, full: bool = False) -> Any:
    """Tensors of a `.safetensors` or torch checkpoint file (prefixes `module.`/`_orig_mod.` removed).

    Torch files are always read with `weights_only=True`, so unpickling cannot run code; an old file that
    needs more gets an error naming `cifarb convert-checkpoint`. With `full`, returns (state_dict, the other
    top-level entries).
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a damaged header
            raise CifarbError(f"{path} is not a readable safetensors file ({str(exc)[:120]}); download it again") from None
        state = _strip_prefixes(state)
        return (state, {}) if full else state
    from cifarb.runs.rundir import load_weights_only

    payload = load_weights_only(path)
    state = extract_state(payload, path)
    if not full:
        return state
    extras = {k: v for k, v in payload.items() if not _is_tensor_map(v)} if isinstance(payload, dict) else {}
    return state, extras


def _is_tensor_map(obj: Any) -> bool:
    import torch

    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def extract_state(payload: Any, path: Path) -> dict[str, Any]:
    if isinstance(payload, Mapping):
        for key in ("state_dict", "model", "model_state_dict", "net", "ema"):
            if key in payload and _is_tensor_map(payload[key]):
                return _strip_prefixes(payload[key])
        if _is_tensor_map(payload):
            return _strip_prefixes(payload)
    raise CifarbError(f"{path} holds no state dict (expected a dict of tensors, or one under 'state_dict' or "
                      "'model'); save it with torch.save({'model': model.state_dict()}, path)")


def _strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop DataParallel (`module.`) and torch.compile (`_orig_mod.`) prefixes from every key."""
    out = {}
    for key, value in state.items():
        k = key
        while True:
            for prefix in ("module.", "_orig_mod."):
                if k.startswith(prefix):
                    k = k[len(prefix):]
                    break
            else:
                break
        out[k] = value
    return out


def build_and_load(arch: str, num_classes: int, options: dict[str, Any], state: Mapping[str, Any],
                    path: Path) -> Any:
    """Build `arch` and load `state` into it; an error naming the misfit if the checkpoint does not fit."""
    from cifarb.models import build_model

    net = build_model(arch, num_classes=num_classes, **options)
    check_fit(net, state, arch, path)
    # check_fit is the strict check; num_batches_tracked may be absent from old checkpoints.
    try:
        net.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CifarbError(f"{path} does not load into --arch {arch} ({str(exc).splitlines()[0][:160]}); "
                          "the file is damaged or from another architecture") from None
    net.eval()
    return net


def check_fit(net: Any, state: Mapping[str, Any], arch: str, path: Path | str) -> None:
    """CifarbError if `state` has missing or unexpected keys, or shapes that differ from `net`'s."""
    own = net.state_dict()
    ignorable = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - ignorable)
    unexpected = sorted(k for k in set(state) - set(own) if not k.endswith("num_batches_tracked"))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:2])})")
    raise CifarbError(f"{path} does not fit --arch {arch}: {', '.join(parts)}; pass the architecture it was "
                      "trained with (and a dataset with the same number of classes)")


def infer_classes(state: Mapping[str, Any]) -> int:
    """The output width of the last 2-D weight (the classifier head), used when the caller gives none."""
    heads = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    return int(heads[-1].shape[0]) if heads else 10
