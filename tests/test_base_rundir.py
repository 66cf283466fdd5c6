"""Run-directory rules of DESIGN.md: --out / --resume checks, jsonl, manifest, atomic checkpoints."""

from __future__ import annotations

import datetime as dt

import pytest

from cifarb.errors import CifarbError, UsageError
from cifarb.runs import RunDir, default_run_name, provenance_info


def test_default_name_format():
    name = default_run_name("fastnet", "standard+mixup", 3, now=dt.datetime(2026, 1, 2, 3, 4, 5))
    assert name == "20260102-030405-fastnet-standard_mixup-s3"


def test_out_rules(tmp_path):
    RunDir(tmp_path / "absent").check_can_start(resume=False)  # absent: fine
    empty = tmp_path / "empty"
    empty.mkdir()
    RunDir(empty).check_can_start(resume=False)  # empty: fine
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(UsageError, match="--resume"):
        RunDir(full).check_can_start(resume=False)
    with pytest.raises(UsageError, match="no manifest"):
        RunDir(full).check_can_start(resume=True)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        RunDir(afile).check_can_start(resume=False)
    # checking writes nothing
    assert not (tmp_path / "absent").exists()


def test_metrics_jsonl_roundtrip_and_truncate(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.write_manifest({"config": {"arch": "x"}, **provenance_info()})
    for epoch in (1, 2, 3):
        run.append_metrics({"event": "epoch", "epoch": epoch, "train_loss": 1.0 / epoch})
    run.append_metrics({"event": "eval", "dataset": "cifar10-b"})
    with open(run.metrics_path, "a") as fh:
        fh.write('{"event": "epoch", "epo')  # torn line from a crash
    assert [r["epoch"] for r in run.read_metrics("epoch")] == [1, 2, 3]
    run.truncate_epochs(2)
    assert [r["epoch"] for r in run.read_metrics("epoch")] == [1, 2]
    assert len(run.read_metrics("eval")) == 1
    assert run.read_manifest()["config"] == {"arch": "x"}
    with pytest.raises(ValueError):
        run.append_metrics({"epoch": 4})


def test_eval_json_and_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    run = RunDir(tmp_path / "r").create()
    run.write_eval("cifar10-b", {"accuracy": 0.5})
    assert run.eval_datasets() == ["cifar10-b"]
    assert run.read_eval("cifar10-b") == {"accuracy": 0.5}
    run.save_checkpoint({"w": torch.arange(3)})
    assert torch.equal(run.load_checkpoint()["w"], torch.arange(3))
    run.checkpoint_path().write_bytes(b"garbage")
    with pytest.raises(CifarbError, match="unreadable"):
        run.load_checkpoint()
    with pytest.raises(CifarbError, match="no checkpoint"):
        run.load_checkpoint("best.pt")


def test_corrupt_json_is_a_clear_error(tmp_path):
    run = RunDir(tmp_path).create()
    run.manifest_path.write_text("{not json")
    with pytest.raises(CifarbError, match="not valid JSON"):
        run.read_manifest()


def test_provenance_records_installed_versions_even_when_not_imported(monkeypatch):
    import importlib.metadata
    import sys

    # a process that never imported torchvision (e.g. a fastnet + standard run) still records it
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    versions = provenance_info()["versions"]
    try:
        expected = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        expected = None
    assert versions["torchvision"] == expected
    assert versions["torchvision"] is None or versions["torchvision"].split("+")[0][0].isdigit()


def test_is_free_is_the_rule_check_can_start_and_the_study_planner_share(tmp_path):
    from cifarb.runs import RunDir

    absent, empty, busy, a_file = (RunDir(tmp_path / n) for n in ("absent", "empty", "busy", "file"))
    empty.path.mkdir()
    busy.path.mkdir()
    (busy.path / "x").write_text("x")
    a_file.path.write_text("x")
    assert [r.is_free() for r in (absent, empty, busy, a_file)] == [True, True, False, False]
    assert (busy.eval_dir, busy.predictions_dir) == (busy.path / "eval", busy.path / "predictions")
    assert busy.eval_path("cifar10-b").parent == busy.eval_dir
