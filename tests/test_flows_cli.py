"""`cifarb flow train|sample|encode` in-process: run directory, --out/--resume rules, PNG grid, latents, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cifarb.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def quick_toml(tmp_path):
    f = tmp_path / "quick.toml"
    f.write_text('base = "tiny"\nhidden = 8\nsteps = 1\ntrain_limit = 96\ntest_limit = 48\ngrid_n = 4\n')
    return f


@pytest.fixture
def flow_run(tmp_path, quick_toml, shared_data):
    out = tmp_path / "run"
    rc = main(["flow", "train", "--config", str(quick_toml), "--dataset", "cifar10", "--root", str(shared_data),
               "--trust-local", "--epochs", "1", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_flow_train_on_real_images_writes_the_run_directory(flow_run, shared_data, capsys):
    lines = [json.loads(s) for s in (flow_run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["event"] == "epoch" and lines[0]["epoch"] == 1
    assert {"train_bpd", "test_bpd", "lr", "elapsed_s"} <= set(lines[0])
    assert lines[0]["test_bpd"] < 8.0  # even one tiny epoch on real images beats the 8-bit uniform code
    manifest = json.loads((flow_run / "manifest.json").read_text())
    assert manifest["config"]["name"] == "quick" and manifest["data"]["verified"] is False
    assert any(k.endswith("test_batch") for k in manifest["data"]["sha256"])
    assert (flow_run / "samples" / "epoch_0001.png").is_file()
    # Extending the run with --resume adds epoch 2 and keeps epoch 1.
    rc = main(["flow", "train", "--dataset", "cifar10", "--root", str(shared_data), "--trust-local",
               "--epochs", "2", "--out", str(flow_run), "--resume", "--no-progress"])
    assert rc == 0
    lines = [json.loads(s) for s in (flow_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]


def test_out_and_resume_rules(tmp_path, quick_toml, shared_data, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("x")
    base = ["flow", "train", "--dataset", "cifar10", "--root", str(shared_data), "--trust-local", "--no-progress"]
    assert main([*base, "--config", str(quick_toml), "--out", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "fresh"), "--resume"]) == 2
    assert not (tmp_path / "fresh").exists()
    assert main([*base, "--out", str(tmp_path / "fresh")]) == 2  # no --config
    assert main([*base, "--config", "huge", "--out", str(tmp_path / "fresh")]) == 1
    assert "no such preset or file" in capsys.readouterr().err
    assert main([*base, "--config", str(quick_toml), "--epochs", "0", "--out", str(tmp_path / "fresh")]) == 2
    # Unverified local data without --trust-local: an error, and no run directory left behind.
    rc = main(["flow", "train", "--config", str(quick_toml), "--dataset", "cifar10", "--root", str(shared_data),
               "--out", str(tmp_path / "fresh"), "--no-progress"])
    assert rc == 1 and not (tmp_path / "fresh").exists()


def test_flow_sample_writes_a_png_grid(flow_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["flow", "sample", str(flow_run), "--n", "6", "--temperature", "0.5", "--out", str(out),
                 "--scale", "1"]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (2 * 34 + 2, 3 * 34 + 2, 3)  # 6 images in a 3-column grid, 2-px padding
    first = img.copy()
    assert main(["flow", "sample", str(flow_run / "checkpoints" / "last.pt"), "--n", "6", "--temperature",
                 "0.5", "--out", str(out), "--scale", "1"]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), first)  # seeded
    assert main(["flow", "sample", str(tmp_path / "nothing"), "--n", "2", "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["flow", "sample", str(flow_run), "--n", "2", "--out", str(tmp_path)]) == 2


def test_flow_encode_latents_decode_back_to_the_images(flow_run, tmp_path, shared_data):
    from cifarb.data.readers import load_cifar
    from cifarb.flows.checkpoint import load_flow

    out = tmp_path / "lat.npz"
    assert main(["flow", "encode", str(flow_run), "--dataset", "cifar10", "--split", "test", "--root",
                 str(shared_data), "--trust-local", "--out", str(out), "--no-progress"]) == 0
    lat = np.load(out)
    test = load_cifar("cifar10", "test", shared_data, trust_local=True)
    n = len(test.labels)
    assert lat["z"].shape == (n, 4) and lat["eps"].shape == (n, 3072)
    assert np.array_equal(lat["labels"], test.labels) and np.array_equal(lat["indices"], np.arange(n))
    loaded = load_flow(flow_run)
    assert str(lat["flow_sha256"]) == loaded.sha256
    with torch.no_grad():
        x = loaded.model.decode(torch.from_numpy(lat["z"][:32]), torch.from_numpy(lat["eps"][:32]))
    assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), test.images[:32])


def test_help_explains(capsys):
    assert main(["flow", "train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--resume" in text and "bits/dim" in text and "tiny" in text
    assert main(["flow", "--help"]) == 0
    assert "encode" in capsys.readouterr().out
