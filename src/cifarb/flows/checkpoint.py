"""Flow checkpoints: the training state in RUNDIR/checkpoints/last.pt, weights-only exports, and loading either."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifarb._hashing import file_digest
from cifarb.errors import CifarbError

FORMAT = "cifarb-flow"
FORMAT_VERSION = 1


@dataclass
class LoadedFlow:
    """A flow ready for inference, with where it came from."""

    model: Any  # GlobalLocalFlow (torch is imported lazily)
    path: Path
    sha256: str
    config: Any  # FlowConfig
    meta: dict[str, Any]


def resolve_flow_path(spec: str | Path) -> Path:
    """`--flow` accepts a checkpoint file or a flow run directory (its checkpoints/last.pt)."""
    p = Path(spec)
    if p.is_dir():
        ckpt = p / "checkpoints" / "last.pt"
        if not ckpt.is_file():
            raise CifarbError(
                f"flow run directory {p} has no checkpoints/last.pt; give a flow checkpoint file, or train "
                f"one with `cifarb flow train --out {p}`"
            )
        return ckpt
    if not p.exists():
        raise CifarbError(
            f"flow checkpoint {p} does not exist; give a file from `cifarb flow train` (RUNDIR/checkpoints/last.pt), "
            "its run directory, or the bundled docs/assets/flow_small.pt"
        )
    return p


def read_flow_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load a flow checkpoint safely (weights only, never code) and check that it is one."""
    from cifarb.runs.rundir import load_weights_only

    try:
        state = load_weights_only(path)
    except CifarbError as exc:
        raise CifarbError(f"flow {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state or "config" not in state:
        raise CifarbError(
            f"{path} is not a cifarb flow checkpoint (no '{FORMAT}' marker); give a checkpoint written by "
            "`cifarb flow train` (a classifier checkpoint does not work here)"
        )
    version = state.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CifarbError(f"flow checkpoint {path} has a damaged format version {version!r}; retrain or copy it again")
    if not isinstance(state["config"], dict) or not isinstance(state["model"], dict):
        raise CifarbError(f"flow checkpoint {path} is damaged (config or model is not a mapping); retrain or copy it again")
    if version > FORMAT_VERSION:
        raise CifarbError(f"flow checkpoint {path} has format version {state.get('version')}; upgrade cifarb to read it")
    return state


def build_from_state(state: dict[str, Any], path: Path | str = "<state>") -> Any:
    """A GlobalLocalFlow with the weights of a checkpoint dict; a mismatch with its config is an error."""
    from cifarb.flows.configs import config_from_dict
    from cifarb.flows.model import GlobalLocalFlow

    cfg = config_from_dict(state["config"], f"{path} (config)")
    model = GlobalLocalFlow(cfg)
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CifarbError(
            f"flow checkpoint {path} does not fit its own config ({first}); the file is damaged or was edited—retrain"
        ) from None
    return model


def load_flow(spec: str | Path, device: str = "cpu") -> LoadedFlow:
    """Load a flow for inference from a checkpoint file or run directory (eval mode, no gradients needed)."""
    path = resolve_flow_path(spec)
    state = read_flow_checkpoint(path)
    model = build_from_state(state, path).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    meta = {k: state[k] for k in ("epoch", "test_bpd", "data_sha256", "dataset") if k in state}
    return LoadedFlow(model=model, path=path, sha256=file_digest(path, "sha256"), config=model.cfg, meta=meta)


def export_flow(src: str | Path, dst: str | Path) -> Path:
    """Write a weights-only copy of a flow checkpoint (no optimizer state): what docs/assets ships."""
    import io

    import torch

    from cifarb._atomic import atomic_write_bytes

    path = resolve_flow_path(src)
    state = read_flow_checkpoint(path)
    slim = {k: state[k] for k in ("format", "version", "config", "model", "epoch", "test_bpd", "dataset",
                                  "data_sha256", "elapsed_s") if k in state}
    buf = io.BytesIO()
    torch.save(slim, buf)
    return atomic_write_bytes(dst, buf.getvalue())
