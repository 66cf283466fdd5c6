"""Run-directory I/O (the layout documented in docs/training.md): manifest, metrics.jsonl, atomic checkpoints, eval and predictions."""

from cifarb.runs.rundir import RunDir, default_run_name, provenance_info

__all__ = ["RunDir", "default_run_name", "provenance_info"]
