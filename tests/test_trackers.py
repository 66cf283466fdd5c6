"""Experiment trackers: what TensorBoard, MLflow (local file store) and wandb (offline) received, read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cifarb.cli import main
from cifarb.errors import CifarbError, UsageError
from cifarb.train.trackers import open_trackers, parse_log, result_scalars
from test_train_helpers import write_cifar10_root

REPO = Path(__file__).resolve().parents[1]
RESULT = json.loads((REPO / "tests/fixtures_runs/cifar10-fastnet-standard-s0/eval/cifar10-b.json").read_text())
EPOCHS = [{"event": "epoch", "epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.3 * e, "test_loss": 1.5 / e,
           "test_accuracy": 0.25 * e, "lr": 0.1, "elapsed_s": 1.0 * e} for e in (1, 2)]


def _tb_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_parse_log() -> None:
    assert parse_log("tensorboard, mlflow,tensorboard") == ("tensorboard", "mlflow")
    assert parse_log(None) == ()
    with pytest.raises(UsageError, match="did you mean 'mlflow'"):
        parse_log("mlfow")


def test_tensorboard_events_read_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'cifarb[tensorboard]')")
    t = open_trackers(["tensorboard"], tmp_path, config={"arch": "fastnet"})
    for r in EPOCHS:
        t.log_epoch(r)
    t.log_result(RESULT)
    t.close()
    scalars = _tb_scalars(tmp_path / "tensorboard")
    assert scalars["epoch/train_loss"] == [(1, pytest.approx(2.0)), (2, pytest.approx(1.0))]
    assert scalars["epoch/test_accuracy"] == [(1, pytest.approx(0.25)), (2, pytest.approx(0.5))]
    assert scalars["eval/cifar10-b/macro_std"] == [(2, pytest.approx(RESULT["macro_std"]))]


def test_mlflow_local_file_store_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed (pip install 'cifarb[mlflow]')")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    t = open_trackers(["mlflow"], tmp_path, name="run-a", config={"arch": "fastnet", "hparams": {"momentum": 0.9}})
    t.log_epoch(EPOCHS[0])
    t.close()
    ids = json.loads((tmp_path / "trackers.json").read_text())
    # a resumed run continues the same MLflow run
    t = open_trackers(["mlflow"], tmp_path, name="run-a")
    t.log_epoch(EPOCHS[1])
    t.log_result(RESULT)
    t.close()
    assert json.loads((tmp_path / "trackers.json").read_text()) == ids
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    run = client.get_run(ids["mlflow"])
    assert run.data.params["arch"] == "fastnet" and run.data.params["hparams.momentum"] == "0.9"
    hist = client.get_metric_history(ids["mlflow"], "train_loss")
    assert sorted((m.step, m.value) for m in hist) == [(1, pytest.approx(2.0)), (2, pytest.approx(1.0))]
    assert run.data.metrics["cifar10-b.accuracy"] == pytest.approx(RESULT["accuracy"])
    artifacts = [a.path for a in client.list_artifacts(ids["mlflow"], "eval")]
    assert artifacts == ["eval/cifar10-b.json"]


def test_wandb_offline_run_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb not installed (pip install 'cifarb[wandb]')")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default
    monkeypatch.setenv("WANDB_SILENT", "true")
    t = open_trackers(["wandb"], tmp_path, name="run-w", config={"arch": "fastnet"})
    for r in EPOCHS:
        t.log_epoch(r)
    t.log_result(RESULT)
    t.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "wandb must run offline, under the run directory"
    history, summary, config = _wandb_read(runs[0])
    assert [(h.get("_step"), h["train_loss"]) for h in history if "train_loss" in h] == [(1, 2.0), (2, 1.0)]
    assert summary["cifar10-b/accuracy"] == pytest.approx(RESULT["accuracy"])
    assert config["arch"] in ("fastnet", {"value": "fastnet"})


def _wandb_read(run_dir: Path) -> tuple[list[dict], dict, dict]:
    """(history rows, summary, config) as an offline wandb run directory's .wandb file holds them."""
    history, summary, config = [], {}, {}
    for r in _wandb_records(next(run_dir.glob("*.wandb"))):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.summary.update})
        elif kind == "run":
            config.update({i.key: json.loads(i.value_json) for i in r.run.config.update if i.key})
    return history, summary, config


def _wandb_records(path: Path):  # noqa: ANN202 - protobuf Records
    """The records of an offline .wandb file (LevelDB-style log: 32 KiB blocks, 7-byte record headers)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


@pytest.mark.usefixtures("one_thread")
def test_train_mirrors_metrics_jsonl_and_the_final_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard not installed")
    pytest.importorskip("mlflow", reason="mlflow-skinny not installed")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = write_cifar10_root(tmp_path / "data", n_train=32, n_test=16)
    out = tmp_path / "run"
    argv = ["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard", "--root", str(root),
            "--trust-local", "--batch-size", "16", "--epochs", "2", "--out", str(out), "--no-progress",
            "--threads", "1"]
    assert main([*argv, "--log", "tensorboardd"]) == 2 and not out.exists()  # checked before writing
    assert main([*argv, "--log", "tensorboard,mlflow"]) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [x for x in lines if x["event"] == "epoch"]
    result = json.loads((out / "eval" / "cifar10-b.json").read_text())
    tb = _tb_scalars(out / "tensorboard")
    assert tb["epoch/test_loss"] == [(e["epoch"], pytest.approx(e["test_loss"])) for e in epochs]
    assert tb["eval/cifar10-b/accuracy"] == [(2, pytest.approx(result["accuracy"]))]
    run_id = json.loads((out / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    hist = client.get_metric_history(run_id, "train_accuracy")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == \
        [(e["epoch"], pytest.approx(e["train_accuracy"])) for e in epochs]
    assert client.get_run(run_id).data.metrics["cifar10-b.macro_std"] == pytest.approx(result["macro_std"])
    assert json.loads((out / "manifest.json").read_text())["config"]["log"] == "tensorboard,mlflow"


def test_missing_tracker_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from cifarb.train import trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    with pytest.raises(CifarbError, match=r"pip install 'cifarb\[wandb\]'"):
        trackers.check_installed(["wandb"])


def test_no_tracker_library_is_imported_unless_asked() -> None:
    code = ("import sys, cifarb.train.trackers, cifarb.cli; cifarb.cli.build_parser(); "
            "print(sorted(m for m in ('mlflow', 'wandb', 'tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "[]"
    assert result_scalars({"dataset": "x", "accuracy": 0.5, "macro_std": None}) == {"x/accuracy": 0.5}


@pytest.mark.usefixtures("one_thread")
def test_flow_train_mirrors_metrics_jsonl_and_the_final_bpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for lib in ("tensorboard", "mlflow", "wandb"):
        pytest.importorskip(lib, reason=f"{lib} not installed (pip install 'cifarb[trackers]')")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    root = write_cifar10_root(tmp_path / "data", n_train=32, n_test=16)
    toml = tmp_path / "quick.toml"
    toml.write_text('base = "tiny"\nhidden = 8\nsteps = 1\nbatch_size = 16\ngrid_n = 2\n')
    out = tmp_path / "flow"
    argv = ["flow", "train", "--config", str(toml), "--dataset", "cifar10", "--root", str(root), "--trust-local",
            "--out", str(out), "--no-progress", "--threads", "1"]
    assert main([*argv, "--epochs", "1", "--log", "mlfow"]) == 2 and not out.exists()  # checked before writing
    assert main([*argv, "--epochs", "1", "--log", "tensorboard,mlflow"]) == 0
    ids = json.loads((out / "trackers.json").read_text())
    # a resume extends the run and may add a tracker; MLflow continues the same run
    assert main([*argv[:2], *argv[4:], "--resume", "--epochs", "2", "--log", "tensorboard,mlflow,wandb"]) == 0
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]
    best = min(e["test_bpd"] for e in epochs)

    tb = _tb_scalars(out / "tensorboard")
    assert tb["epoch/train_bpd"] == [(e["epoch"], pytest.approx(e["train_bpd"])) for e in epochs]
    assert tb["epoch/test_bpd"] == [(e["epoch"], pytest.approx(e["test_bpd"])) for e in epochs]
    assert (1, pytest.approx(epochs[0]["test_bpd"])) in tb["final/test_bpd"]  # after the first invocation
    assert tb["final/test_bpd"][-1] == (2, pytest.approx(epochs[1]["test_bpd"]))
    assert tb["final/best_test_bpd"][-1] == (2, pytest.approx(best))
    # resuming the finished run trains nothing and logs the same final values at the last epoch again
    assert main([*argv[:2], *argv[4:], "--resume", "--log", "tensorboard"]) == 0
    assert _tb_scalars(out / "tensorboard")["final/best_test_bpd"][-1] == (2, pytest.approx(best))

    run_id = json.loads((out / "trackers.json").read_text())["mlflow"]
    assert run_id == ids["mlflow"]
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    hist = sorted(client.get_metric_history(run_id, "test_kl_bpd"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in hist] == [(e["epoch"], pytest.approx(e["test_kl_bpd"])) for e in epochs]
    run = client.get_run(run_id)
    assert run.data.metrics["final.best_test_bpd"] == pytest.approx(best)
    assert run.data.params["hidden"] == "8" and run.data.params["epochs"] == "1"  # the first invocation's

    wandb_runs = list((out / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1
    history, summary, _ = _wandb_read(wandb_runs[0])
    assert [(h["_step"], h["test_bpd"]) for h in history if "test_bpd" in h] == \
        [(2, pytest.approx(epochs[1]["test_bpd"]))]  # wandb joined at the resume
    assert summary["final/best_test_bpd"] == pytest.approx(best)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trackers"] == ["tensorboard", "mlflow"]
    assert [r["trackers"] for r in manifest["resumes"]] == [["tensorboard", "mlflow", "wandb"], ["tensorboard"]]
