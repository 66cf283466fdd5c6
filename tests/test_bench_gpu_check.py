"""bench/gpu_check.sh: the device check's code runs end to end on CPU (--cpu-smoke), and a section past its
time cap is recorded as a timeout while the others still run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.sh"

pytestmark = pytest.mark.subprocess


def _run(out: Path, *args: str, timeout: float = 600) -> tuple[dict, str]:
    env = {**os.environ, "OUT": str(out)}
    env.pop("PYTHONPATH", None)  # the script sets it itself: it must run from the source tree alone
    proc = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_cpu_smoke_runs_every_section(tmp_path):
    # caps x4: this machine is shared; the smoke run's own budget is 60 s on an idle one
    report, md = _run(tmp_path / "out", "--cpu-smoke", "--cap-scale", "4", "--budget", "400")
    assert report["mode"] == "cpu-smoke"
    sections = report["sections"]
    assert list(sections) == ["env", "train_fastnet", "eval", "ddp", "flowaug", "flow_paper"]
    for name, sec in sections.items():
        assert sec["status"] == "ok", (name, sec)
    env = sections["env"]["results"]
    assert env["cuda_available"] is False and env["torch"]
    train = sections["train_fastnet"]["results"]
    assert set(train) >= {"fp32", "amp", "compile"}
    for variant in ("fp32", "amp", "compile"):
        v = train[variant]
        assert v["status"] == "ok" and v["img_per_s"] > 0 and v["bare_img_per_s"] > 0
        assert v["ratio"] == pytest.approx(v["img_per_s"] / v["bare_img_per_s"], rel=0.01)
    assert train["amp"]["amp_dtype"] == "bfloat16" and train["compile"]["compile"] is True
    ev = sections["eval"]["results"]
    assert ev["images"] == 2 * 5 * 64 and 0 <= ev["accuracy"] <= 1 and ev["ratio"] > 0
    ddp = sections["ddp"]["results"]["result"]
    assert ddp["backend"] == "gloo" and ddp["identical_weights"] is True
    fa = sections["flowaug"]["results"]
    assert fa["standard+flowaug"]["img_per_s_epoch2"] > 0 and fa["flowaug_vs_standard_time"] > 0
    assert sections["flow_paper"]["results"]["finite"] is True
    # the markdown table carries every section
    for name in sections:
        assert f"| {name} |" in md
    assert "| train_fastnet | compile |" in md


def test_a_section_past_its_cap_is_recorded_as_timeout(tmp_path):
    # a cap of 10 ms: the worker is killed inside the first section, and the next runs in a fresh one
    report, md = _run(tmp_path / "out", "--cpu-smoke", "--sections", "flow_paper,env", "--cap", "flow_paper=0.01",
                      "--cap", "env=120", "--budget", "200", timeout=300)
    sections = report["sections"]
    assert sections["flow_paper"]["status"] == "timeout" and "cap" in sections["flow_paper"]["note"]
    assert sections["env"]["status"] == "ok" and sections["env"]["results"]["torch"]
    assert "| flow_paper |" in md and "timeout" in md
