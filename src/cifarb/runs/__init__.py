"""Run-directory I/O (the DESIGN.md contract): manifest, metrics.jsonl, atomic checkpoints, eval and predictions."""

from cifarb.runs.rundir import RunDir, default_run_name, provenance_info

__all__ = ["RunDir", "default_run_name", "provenance_info"]
