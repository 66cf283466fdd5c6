"""DDP through torchrun: process-group setup from the launcher's environment (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cifarb.errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    # started by torchrun (or with MASTER_ADDR + WORLD_SIZE set): DDP runs even with one process, so the
    # `--nproc_per_node=1` run exercises the same wrapper, process group and collectives as a larger one
    launched: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world() -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as set by torchrun (absent: a single process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise UsageError("WORLD_SIZE / RANK / LOCAL_RANK must be integers; launch DDP runs with torchrun") from None
    launched = "TORCHELASTIC_RUN_ID" in os.environ or ("WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ)
    return DistInfo(rank=rank, world=world, local_rank=local, launched=launched)


def init(device: torch.device) -> DistInfo:
    """Join the process group when launched with several processes; gloo for CPU, nccl for CUDA."""
    info = launched_world()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return info


def device_for(requested: str, info: DistInfo) -> torch.device:
    """The training device: `auto` is cuda (this process's local GPU under torchrun) when present, else cpu."""
    from cifarb._device import resolve_device

    def local_gpu() -> int:
        return info.local_rank if info.enabled else torch.cuda.current_device()

    return resolve_device(requested, supported=("cpu", "cuda"), default_index=local_gpu)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_sum(values: list[float], device: torch.device, info: DistInfo) -> list[float]:
    """Sum a few numbers over all ranks (float64, so sums of counts stay exact)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_flag(flag: bool, device: torch.device, info: DistInfo) -> bool:
    """True on every rank if `flag` is true on any rank (keeps ranks in step when one must stop)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sync_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running stats) to every rank, so all ranks hold identical models."""
    if info.enabled:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
