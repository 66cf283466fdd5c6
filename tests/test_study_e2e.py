"""One real study cell end to end: `cifarb train` + `cifarb eval` on -C in child processes, then report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifarb.cli import main
from test_train_helpers import write_cifar10_root


@pytest.mark.slow
@pytest.mark.subprocess
def test_real_cell_trains_evaluates_skips_when_done_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_cifar10_root(tmp_path / "data", n_train=40, n_test=30)
    assert main(["data", "make-c", "--dataset", "cifar10", "--root", str(root), "--trust-local",
                 "--out", str(tmp_path / "c"), "--corruptions", "gaussian_noise,fog", "--severities", "1,3",
                 "--no-progress"]) == 0
    out = tmp_path / "study"
    config = tmp_path / "tiny.toml"
    config.write_text(f"""
[study]
name = "tiny"
out = "{out}"
datasets = ["cifar10"]
archs = ["fastnet"]
augs = ["standard"]
seeds = [0]
epochs = 1
batch_size = 16
root = "{root}"
trust_local = true
c_root = "{tmp_path / 'c'}"
train_args = ["--limit-train", "40", "--no-progress"]
eval_args = ["--bootstrap", "50", "--no-progress"]
""")
    capsys.readouterr()
    assert main(["study", str(config), "--dry-run"]) == 0
    assert "cifar10-fastnet-standard-s0  new       to do: train, eval cifar10-c" in capsys.readouterr().out

    assert main(["study", str(config), "--no-progress"]) == 0, (out / "_logs" / "cifar10-fastnet-standard-s0.log").read_text()
    assert "ok    cifar10-fastnet-standard-s0  (train, eval cifar10-c)" in capsys.readouterr().out
    rundir = out / "cifar10-fastnet-standard-s0"
    manifest = json.loads((rundir / "manifest.json").read_text())
    assert manifest["config"]["epochs"] == 1 and manifest["config"]["limit_train"] == 40
    c = json.loads((rundir / "eval" / "cifar10-c-local.json").read_text())
    assert c["dataset"] == "cifar10-c-local" and c["n_images"] == 30
    assert sorted(c["corruptions"]) == ["fog", "gaussian_noise"]
    assert (rundir / "predictions" / "cifar10-c-local.parquet").is_file()

    # finished: a rerun does nothing
    assert main(["study", str(config), "--no-progress"]) == 0
    assert "0 cells run, 1 already done" in capsys.readouterr().out

    assert main(["report", str(out), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].startswith("run,standard,cifar10,fastnet,standard,0,")
