"""`--threads N`: one helper that parses, chooses the default, applies and records the thread count.

Over-subscribed cores are the slowest way to train on a small shared machine: torch's default (one
thread per core) plus other jobs on 2 cores made `flow train` crawl, while one thread ran it at full
speed. The default below was measured with `bench/bench_threads.py` (figures in docs/bench/threads.md:
under load, 1 thread trained fastnet 1.48x and the small flow 8.6x faster than 2 threads).
Applying sets torch's intra-op threads (when torch is in use), OpenCV's and the BLAS/OpenMP pools
(threadpoolctl, when installed), and OMP_NUM_THREADS for child processes.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "CIFARB_THREADS"
# On machines with this many cores or fewer, one thread per process is the measured best default.
SMALL_MACHINE_CORES = 2

_applied: dict[str, Any] = {}


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """$CIFARB_THREADS, else 1 on machines with <= 2 cores (measured), else one thread per core."""
    env = os.environ.get(ENV, "").strip()
    if env:
        if env.isdigit() and int(env) > 0:
            return int(env)
        from cifarb.errors import UsageError

        raise UsageError(f"{ENV}={env!r} is not a positive integer; unset it or give a thread count")
    cores = available_cores()
    return 1 if cores <= SMALL_MACHINE_CORES else cores


def apply_threads(requested: int | None, torch_too: bool = True) -> int:
    """Use `requested` threads (None: the default) from now on in this process and its children."""
    n = int(requested) if requested is not None else default_threads()
    source = "--threads" if requested is not None else (ENV if os.environ.get(ENV, "").strip() else "default")
    os.environ["OMP_NUM_THREADS"] = str(n)  # child processes (study cells, DataLoader workers' BLAS)
    if torch_too:
        import torch

        torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    _applied.clear()
    _applied.update({"threads": n, "source": source, "cores": available_cores()})
    return n


def threads_info() -> dict[str, Any] | None:
    """What `apply_threads` set in this process (for manifests), or None if it was not called."""
    return dict(_applied) or None


def study_share(jobs: int) -> int:
    """Threads per cell when `jobs` cells run at once: the cores shared out, at least 1."""
    return max(1, available_cores() // max(1, jobs))
