"""`--threads N`: one helper that parses, chooses the default, applies and records the thread count.

Over-subscribed cores are the slowest way to train on a small shared machine: torch's default (one
thread per core) plus other jobs on 2 cores made `flow train` crawl, while one thread ran it at full
speed; on the same machine idle, 2 threads were 1.87x (fastnet) and 1.67x (flow) faster than 1
(`bench/bench_threads.py`, docs/bench/threads.md). So the default is one thread per core that other
work leaves free, measured when the command starts (`busy_cores`), and recorded with the count.
Applying sets torch's intra-op threads (when torch is in use), OpenCV's and the BLAS/OpenMP pools
(threadpoolctl, when installed), and OMP_NUM_THREADS for child processes.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

ENV = "CIFARB_THREADS"
# how long the default watches /proc/stat to see how busy the cores are now
SAMPLE_S = 0.25
# a core counts as free when other work uses less than this share of it (on 2 cores: 2 threads only
# while the others need under 0.75 of a core; with a whole core busy, a second thread only contends)
FREE_SHARE = 0.25
PROC_STAT = Path("/proc/stat")

_applied: dict[str, Any] = {}


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_jiffies(cpus: set[int]) -> tuple[int, int] | None:
    """(busy, total) clock ticks summed over `cpus` since boot, from /proc/stat; None where it is absent."""
    try:
        lines = PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
    return (busy, total) if total else None


def busy_cores(sample_s: float = SAMPLE_S) -> float | None:
    """How many of this process's cores other work keeps busy: the lower of the 1-minute load average
    (smooth, but slow to forget a job that just ended) and a `sample_s` look at /proc/stat (now, but a
    snapshot). None where neither can be read (not Linux)."""
    estimates = []
    try:
        estimates.append(os.getloadavg()[0])
    except (AttributeError, OSError):
        pass
    try:
        cpus = set(os.sched_getaffinity(0))
    except AttributeError:
        cpus = set(range(available_cores()))
    first = _cpu_jiffies(cpus)
    if first is not None:
        time.sleep(sample_s)
        second = _cpu_jiffies(cpus)
        if second is not None and second[1] > first[1]:
            estimates.append(len(cpus) * (second[0] - first[0]) / (second[1] - first[1]))
    return min(estimates) if estimates else None


def threads_for(cores: int, busy: float | None) -> int:
    """One thread per core that `busy` cores of other work leave free (at least 1, at most `cores`)."""
    if busy is None:
        return cores
    return max(1, min(cores, math.floor(cores - busy + 1 - FREE_SHARE)))


def default_threads() -> int:
    """$CIFARB_THREADS, else one thread per core not kept busy by other work when this runs."""
    return _default()[0]


def _default() -> tuple[int, dict[str, Any]]:
    """(thread count, its record for the manifest less the count) when no --threads was given."""
    cores = available_cores()
    env = os.environ.get(ENV, "").strip()
    if env:
        if env.isdigit() and int(env) > 0:
            return int(env), {"source": ENV, "cores": cores}
        from cifarb.errors import UsageError

        raise UsageError(f"{ENV}={env!r} is not a positive integer; unset it or give a thread count")
    busy = busy_cores()
    seen = {} if busy is None else {"busy_cores": round(busy, 2)}
    return threads_for(cores, busy), {"source": "default", "cores": cores, **seen}


def apply_threads(requested: int | None, torch_too: bool = True) -> int:
    """Use `requested` threads (None: the default) from now on in this process and its children."""
    if requested is not None:
        n, why = int(requested), {"source": "--threads", "cores": available_cores()}
    else:
        n, why = _default()  # what the default saw is recorded: a rerun on a busier machine may choose otherwise
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
    _applied.update({"threads": n, **why})
    return n


def threads_info() -> dict[str, Any] | None:
    """What `apply_threads` set in this process (for manifests), or None if it was not called."""
    return dict(_applied) or None


def study_share(jobs: int) -> int:
    """Threads per cell when `jobs` cells run at once: the cores shared out, at least 1."""
    return max(1, available_cores() // max(1, jobs))
