"""bench/bench_train_step.py runs end to end on tiny data, in fp32 and under bf16 autocast, and prints the
ratio of cifarb's step to the bare loop (the figures themselves belong to docs/bench/train.md)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.usefixtures("one_thread")
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "bench_train_step.py"


@pytest.mark.parametrize("amp", [False, True])
def test_step_ratio_is_printed(tmp_path, monkeypatch, capsys, amp):
    root = write_cifar10_root(tmp_path / "data", n_train=32, n_test=16)
    spec = importlib.util.spec_from_file_location("bench_train_step", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["bench_train_step.py", "--root", str(root), "--batch-size", "8", "--steps", "2", "--reps", "1",
            "--augs", "standard,none", "--aug-reps", "1", *(["--amp"] if amp else [])]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    out = capsys.readouterr().out
    assert f"amp {amp}," in out and "32 real training images" in out
    ratios = [float(r) for r in re.findall(r"ratio ([\d.]+)", out)]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)
