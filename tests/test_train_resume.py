"""Kill a real `python -m cifarb train` process after a checkpoint, resume it, and get the uninterrupted weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.subprocess

EPOCHS = 5


def _command(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cifarb", "train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard",
        "--epochs", str(EPOCHS), "--batch-size", "16", "--root", str(root), "--trust-local", "--no-eval",
        "--no-progress", "--out", str(out), *extra,
    ]


def _epochs(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            pass
    return [r for r in lines if r.get("event") == "epoch"]


def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    root = write_cifar10_root(tmp_path / "data", n_train=48, n_test=16)
    ref_out, cut_out = tmp_path / "reference", tmp_path / "interrupted"
    # one thread each: two processes share 2 cores, and oversubscribed OpenMP threads crawl
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    # both start together so the test pays for one interpreter start-up, not two in a row
    ref = subprocess.Popen(_command(root, ref_out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cut = subprocess.Popen(_command(root, cut_out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _epochs(cut_out):
            assert cut.poll() is None, cut.stderr.read().decode()
            assert time.monotonic() < deadline, "no epoch finished within 120 s"
            time.sleep(0.02)
        assert cut.poll() is None, "the run finished before it could be interrupted"
        cut.kill()
        cut.wait()
    finally:
        if cut.poll() is None:
            cut.kill()
            cut.wait()
        cut.stderr.close()
    done_before_kill = torch.load(cut_out / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert 1 <= done_before_kill < EPOCHS

    resumed = subprocess.run(_command(root, cut_out, "--resume"), env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert ref.wait(timeout=180) == 0, ref.stderr.read().decode()
    ref.stderr.close()

    a = torch.load(ref_out / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(cut_out / "checkpoints" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == EPOCHS
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key  # bitwise
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])

    # the log is complete and identical apart from wall time
    ref_log, cut_log = _epochs(ref_out), _epochs(cut_out)
    assert [r["epoch"] for r in cut_log] == list(range(1, EPOCHS + 1))
    strip = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in ref_log]
    assert strip == [{k: v for k, v in r.items() if k != "elapsed_s"} for r in cut_log]
    manifest = json.loads((cut_out / "manifest.json").read_text())
    assert [r["from_epoch"] for r in manifest["resumes"]] == [done_before_kill]
