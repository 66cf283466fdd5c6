"""Flow training loop: run-directory contract, resume equals an uninterrupted run, NaN stop, LR schedule, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cifarb.errors import CifarbError, UsageError
from cifarb.flows.checkpoint import export_flow, load_flow
from cifarb.flows.configs import preset
from cifarb.flows.train import FlowData, lr_at, train_flow

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCH_KEYS = {"event", "epoch", "train_bpd", "test_bpd", "lr", "elapsed_s"}


def _cfg(**kw):
    base = dict(image_size=16, levels=2, steps=1, hidden=8, z_dim=3, enc_channels=4, batch_size=16,
                test_batch_size=32, warmup_steps=2, grid_n=4)
    base.update(kw)
    return preset("tiny").replace(**base)


def _data(n_train: int = 48, n_test: int = 16) -> FlowData:
    rng = np.random.default_rng(0)
    colour = rng.integers(20, 230, (n_train + n_test, 3, 1, 1))
    noise = rng.integers(-10, 10, (n_train + n_test, 3, 16, 16))
    x = torch.from_numpy(np.clip(colour + noise, 0, 255).astype(np.uint8))
    return FlowData(train=x[:n_train], test=x[n_train:], dataset="cifar10", verified=False,
                    files={"synthetic": "0" * 64}, n_official_test=10000)


def test_run_directory_contract(tmp_path):
    out = train_flow(_cfg(epochs=2), tmp_path / "run", data=_data(), progress=False, log=lambda m: None)
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for r in lines:
        assert EPOCH_KEYS <= set(r) and r["event"] == "epoch"
        assert 0 < r["test_bpd"] < 16 and r["lr"] >= 0 and r["elapsed_s"] > 0 and r["cpu_s"] > 0
    assert lines[1]["elapsed_s"] > lines[0]["elapsed_s"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "flow" and manifest["config"]["hidden"] == 8 and manifest["epochs"] == 2
    assert manifest["data"]["n_train"] == 48
    for name in ("last.pt", "best.pt"):
        assert (out / "checkpoints" / name).is_file()
    png = Image.open(out / "samples" / "epoch_0002.png")
    assert png.size == ((4 * 18 + 2) * 2, (5 * 18 + 2) * 2)  # 5 rows of grid_n 16-px images, 2-px pads, x2
    assert not list(out.rglob("*.tmp"))
    # The checkpoint loads for inference and its test bpd is the logged one.
    loaded = load_flow(out)
    assert loaded.meta["epoch"] == 2 and loaded.meta["test_bpd"] == pytest.approx(lines[1]["test_bpd"])
    assert len(loaded.sha256) == 64


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    cfg, data = _cfg(epochs=3), _data()
    full = train_flow(cfg, tmp_path / "full", data=data, progress=False, log=lambda m: None)

    def stop_after_epoch_2(msg):
        if msg.startswith("epoch 2/"):
            raise KeyboardInterrupt  # like Ctrl-C right after the epoch-2 checkpoint

    with pytest.raises(KeyboardInterrupt):
        train_flow(cfg, tmp_path / "cut", data=data, progress=False, log=stop_after_epoch_2)
    # A torn extra line (crash while logging) must not survive the resume either.
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as fh:
        fh.write('{"event": "epoch", "epoch": 3, "train_')
    with pytest.raises(UsageError, match="not empty"):
        train_flow(cfg, tmp_path / "cut", data=data, progress=False)
    train_flow(None, tmp_path / "cut", data=data, resume=True, progress=False, log=lambda m: None)
    a = [json.loads(s) for s in (full / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(s) for s in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        assert ra["test_bpd"] == pytest.approx(rb["test_bpd"], abs=1e-6)
        assert ra["train_bpd"] == pytest.approx(rb["train_bpd"], abs=1e-6)
    sa = torch.load(full / "checkpoints" / "last.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6) for k in sa)


def test_resume_rejects_a_different_config(tmp_path):
    train_flow(_cfg(epochs=1), tmp_path / "r", data=_data(), progress=False, log=lambda m: None)
    with pytest.raises(UsageError, match="differs from the config"):
        train_flow(_cfg(epochs=1, hidden=12), tmp_path / "r", data=_data(), resume=True, progress=False)
    with pytest.raises(UsageError, match="holds no run"):
        train_flow(None, tmp_path / "empty", data=_data(), resume=True, progress=False)


def test_nan_loss_stops_with_a_clear_error(tmp_path, monkeypatch):
    from cifarb.flows.model import GlobalLocalFlow

    real = GlobalLocalFlow.loss_terms

    def nan_terms(self, *a, **k):
        out = real(self, *a, **k)
        out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(GlobalLocalFlow, "loss_terms", nan_terms)
    with pytest.raises(CifarbError, match="diverged.*lower learning rate"):
        train_flow(_cfg(epochs=1), tmp_path / "nan", data=_data(), progress=False)
    assert not (tmp_path / "nan" / "checkpoints" / "last.pt").exists()


def test_lr_schedule_warms_up_then_decays_to_zero():
    cfg = _cfg(lr=1e-3, warmup_steps=10)
    assert lr_at(0, 100, cfg) == pytest.approx(1e-4)
    assert lr_at(9, 100, cfg) == pytest.approx(1e-3)
    assert lr_at(10, 100, cfg) == pytest.approx(1e-3)
    assert lr_at(55, 100, cfg) == pytest.approx(0.5e-3)
    assert lr_at(100, 100, cfg) == pytest.approx(0.0, abs=1e-12)
    mids = [lr_at(s, 100, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(mids, mids[1:]))


def test_checkpoint_errors_and_export(tmp_path):
    out = train_flow(_cfg(epochs=1), tmp_path / "r", data=_data(), progress=False, log=lambda m: None)
    slim = export_flow(out, tmp_path / "slim.pt")
    state = torch.load(slim, weights_only=True)
    assert "optimizer" not in state and state["epoch"] == 1
    assert slim.stat().st_size < (out / "checkpoints" / "last.pt").stat().st_size
    a, b = load_flow(slim).model, load_flow(out).model
    x = _data().test[:4]
    with torch.no_grad():
        assert torch.equal(a.encode(x)[1], b.encode(x)[1])
    with pytest.raises(CifarbError, match="does not exist"):
        load_flow(tmp_path / "nope.pt")
    with pytest.raises(CifarbError, match="has no checkpoints/last.pt"):
        load_flow(tmp_path)
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(slim.read_bytes()[:1000])
    with pytest.raises(CifarbError, match="unreadable"):
        load_flow(bad)
    other = tmp_path / "classifier.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(CifarbError, match="not a cifarb flow checkpoint"):
        load_flow(other)
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("top.")}
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(CifarbError, match="does not fit its own config"):
        load_flow(tmp_path / "edited.pt")
