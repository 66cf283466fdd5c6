"""`--threads`: the default, applying it, the study's share per cell, and the record in the manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cifarb import _threads
from cifarb.cli import build_parser, main
from cifarb.study.config import parse_config
from cifarb.study.runner import eval_argv, train_argv
from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # restored afterwards
    monkeypatch.delenv(_threads.ENV, raising=False)


def test_default_is_one_thread_per_free_core(monkeypatch: pytest.MonkeyPatch) -> None:
    # by hand: floor(cores - busy + 0.75), clamped to [1, cores]; None (nothing readable): every core
    for cores, busy, expected in [(2, 0.0, 2), (2, 0.7, 2), (2, 0.8, 1), (2, 1.0, 1), (2, 11.7, 1),
                                  (16, 0.2, 16), (16, 3.3, 13), (16, 40.0, 1), (4, None, 4), (1, 0.0, 1)]:
        assert _threads.threads_for(cores, busy) == expected, (cores, busy)
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    monkeypatch.setattr(_threads, "busy_cores", lambda: 0.3)
    assert _threads.default_threads() == 2
    monkeypatch.setattr(_threads, "busy_cores", lambda: 1.2)  # another job holds a core: one thread
    assert _threads.default_threads() == 1
    monkeypatch.setattr(_threads, "available_cores", lambda: 16)
    assert _threads.study_share(4) == 4 and _threads.study_share(32) == 1
    monkeypatch.setenv(_threads.ENV, "3")
    assert _threads.default_threads() == 3
    monkeypatch.setenv(_threads.ENV, "many")
    with pytest.raises(Exception, match="CIFARB_THREADS='many' is not a positive integer"):
        _threads.default_threads()


def test_busy_cores_reads_proc_stat_and_takes_the_lower_estimate(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # fields: user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user
    stat.write_text("cpu  30 0 10 150 10 0 0 0 5 0\ncpu0 10 0 5 80 5 0 0 0 5 0\ncpu1 20 0 5 70 5 0 0 0 0 0\n"
                    "intr 12345 0 0\nctxt 999\n")
    monkeypatch.setattr(_threads, "PROC_STAT", stat)
    assert _threads._cpu_jiffies({0}) == (15, 100)  # busy = 100 - idle 80 - iowait 5
    assert _threads._cpu_jiffies({0, 1}) == (15 + 25, 200)
    assert _threads._cpu_jiffies({7}) is None
    monkeypatch.setattr(_threads, "PROC_STAT", tmp_path / "absent")
    assert _threads._cpu_jiffies({0}) is None

    samples = iter([(1000, 4000), (1150, 4200)])  # 150 of 200 ticks busy on 2 cores: 1.5 cores
    monkeypatch.setattr(_threads, "_cpu_jiffies", lambda cpus: next(samples))
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    assert _threads.busy_cores(sample_s=0) == pytest.approx(1.5)
    samples = iter([(1000, 4000), (1010, 4200)])  # a job that just ended: the load average lags, now is idle
    assert _threads.busy_cores(sample_s=0) == pytest.approx(0.1)
    monkeypatch.setattr(_threads, "_cpu_jiffies", lambda cpus: None)  # no /proc/stat: the load average
    assert _threads.busy_cores(sample_s=0) == pytest.approx(1.9)


def test_busy_cores_on_this_machine() -> None:
    busy = _threads.busy_cores(sample_s=0.05)
    assert busy is None or 0.0 <= busy
    assert 1 <= _threads.threads_for(_threads.available_cores(), busy) <= _threads.available_cores()


def test_the_default_records_what_it_saw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_threads, "busy_cores", lambda: 0.123)
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    assert _threads.apply_threads(None) == 2
    assert _threads.threads_info() == {"threads": 2, "source": "default", "cores": 2, "busy_cores": 0.12}
    monkeypatch.setenv(_threads.ENV, "1")
    assert _threads.apply_threads(None) == 1
    assert _threads.threads_info() == {"threads": 1, "source": _threads.ENV, "cores": 2}


def test_every_heavy_command_takes_threads() -> None:
    parser = build_parser()
    for argv in (["train", "--dataset", "cifar10", "--arch", "fastnet", "--aug", "standard"],
                 ["flow", "train", "--config", "tiny", "--dataset", "cifar10"],
                 ["eval", "--model", "resnet20", "--dataset", "cifar10-b"],
                 ["data", "make-c", "--dataset", "cifar10", "--out", "x"],
                 ["study", "cpu-slice"]):
        assert parser.parse_args([*argv, "--threads", "3"]).threads == 3
        assert parser.parse_args(argv).threads is None
    assert main(["train", "--dataset", "cifar10", "--arch", "fastnet", "--aug", "standard", "--threads", "0"]) == 2


def test_apply_sets_torch_and_children_and_is_recorded() -> None:
    import torch

    from cifarb.runs import provenance_info

    assert _threads.apply_threads(2) == 2
    assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"
    assert provenance_info()["threads"] == {"threads": 2, "source": "--threads", "cores": _threads.available_cores()}


def test_study_gives_each_parallel_cell_its_share(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from cifarb.commands.study import _share_threads

    monkeypatch.setattr(_threads, "available_cores", lambda: 8)
    base = {"datasets": ["cifar10"], "archs": ["fastnet"], "augs": ["standard"], "seeds": [0, 1]}
    cfg = parse_config({"study": base, "override": [{"match": {"seed": 1}, "threads": 3}]})
    shared, note = _share_threads(cfg, None, 4, "local")
    assert [c.settings.threads for c in shared.cells] == [2, 3] and "8 cores shared by 4 cells" in note
    forced, _ = _share_threads(cfg, 5, 4, "local")
    assert [c.settings.threads for c in forced.cells] == [5, 5]
    alone, note = _share_threads(cfg, None, 1, "local")
    assert [c.settings.threads for c in alone.cells] == [None, 3] and note == ""
    cell = shared.cells[0]
    assert train_argv(cell, Path("r"), False, ["cifarb"])[-2:] == ["--threads", "2"]
    from cifarb.study.runner import applicable_evals

    step = applicable_evals(cell)[0][0]
    assert "--threads" in eval_argv(cell, Path("r"), step, ["cifarb"])


def test_train_records_threads_and_resume_may_change_them(tmp_path: Path) -> None:
    root = write_cifar10_root(tmp_path / "data", n_train=32, n_test=16)
    out = tmp_path / "run"
    args = ["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard", "--root", str(root),
            "--trust-local", "--batch-size", "16", "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main([*args, "--threads", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["threads"]["threads"] == 1 and manifest["runtime"]["torch_threads"] == 1
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--threads", "2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["threads"]["threads"] == 1  # how the run started
    assert manifest["resumes"][-1]["threads"] == {"threads": 2, "source": "--threads",
                                                  "cores": _threads.available_cores()}
