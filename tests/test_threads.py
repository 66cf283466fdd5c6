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


def test_default_is_one_thread_on_small_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    assert _threads.default_threads() == 1
    monkeypatch.setattr(_threads, "available_cores", lambda: 16)
    assert _threads.default_threads() == 16 and _threads.study_share(4) == 4 and _threads.study_share(32) == 1
    monkeypatch.setenv(_threads.ENV, "3")
    assert _threads.default_threads() == 3
    monkeypatch.setenv(_threads.ENV, "many")
    with pytest.raises(Exception, match="CIFARB_THREADS='many' is not a positive integer"):
        _threads.default_threads()


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
