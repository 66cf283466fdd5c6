"""No file cifarb reads runs code: a pickle payload planted at every load site never fires.

Each payload is a `__reduce__` that would write a marker file when unpickled in full. Every command
must end in exit 1 or 2 with one message, and the marker must never appear.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarb.cli import main
from cifarb.models import build_model
from cifarb.runs import RunDir
from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """Unpickling this in full runs `exec`, which writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "a payload ran"


def _torch_payload(path: Path, marker: Path, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in build_model("resnet20").state_dict().items()}
    torch.save({"model": state, "epoch": 1, "evil": Payload(marker), **extra}, path)
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_cifar10_root(tmp_path_factory.mktemp("data"), n_train=32, n_test=16)


@pytest.fixture(autouse=True)
def _data_env(data_root, monkeypatch):
    # eval reads the images before the model: a small trusted-local root for every command
    monkeypatch.setenv("CIFARB_DATA", str(data_root))


def _check(argv: list[str], capsys, codes=(1,)) -> str:
    if argv[0] == "eval" and "--root" not in argv:
        argv = [*argv, "--trust-local"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code in codes, err
    assert "Traceback" not in err and err.count("cifarb: error:") == 1, err
    return err


def test_a_manifest_beside_the_checkpoint_does_not_make_it_trusted(tmp_path, marker, capsys):
    ckpt = _torch_payload(tmp_path / "run" / "checkpoints" / "last.pt", marker)
    (tmp_path / "run" / "manifest.json").write_text("{}")
    for argv in (["eval", "--model", str(ckpt), "--dataset", "cifar10-b", "--arch", "resnet20"],
                 ["eval", "--model", str(ckpt), "--dataset", "cifar10-b"]):
        err = _check(argv, capsys, codes=(1, 2))
        assert "convert-checkpoint --trust-this-file" in err or "--arch" in err


def test_a_plain_checkpoint_file(tmp_path, marker, capsys):
    ckpt = _torch_payload(tmp_path / "w.pt", marker)
    err = _check(["eval", "--model", str(ckpt), "--arch", "resnet20", "--dataset", "cifar10-b",
                  "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2"], capsys)
    assert "other than tensors" in err and "convert-checkpoint --trust-this-file" in err


def _train_rundir(path: Path, marker: Path) -> Path:
    config = {"dataset": "cifar10", "arch": "resnet20", "aug": "standard", "epochs": 2, "seed": 0,
              "mean": [0.5] * 3, "std": [0.2] * 3, "num_classes": 10, "batch_size": 16}
    RunDir(path).create().write_manifest({"kind": "train", "config": config})
    _torch_payload(path / "checkpoints" / "last.pt", marker, format="cifarb-train-1")
    return path


def test_a_run_directory_for_eval(tmp_path, marker, capsys):
    run = _train_rundir(tmp_path / "run", marker)
    err = _check(["eval", "--model", str(run), "--dataset", "cifar10-b"], capsys)
    assert "convert-checkpoint --trust-this-file" in err


def test_train_resume(tmp_path, marker, capsys):
    root = write_cifar10_root(tmp_path / "data", n_train=32, n_test=16)
    run = _train_rundir(tmp_path / "run", marker)
    err = _check(["train", "--out", str(run), "--resume", "--root", str(root), "--trust-local", "--no-progress",
                  "--no-eval"], capsys)
    assert "convert-checkpoint --trust-this-file" in err


def _flow_payload(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "cifarb-flow", "version": 1, "config": {}, "model": {}, "evil": Payload(marker)}, path)
    return path


def test_flow_checkpoints_for_sample_and_resume(tmp_path, marker, capsys):
    ckpt = _flow_payload(tmp_path / "flow.pt", marker)
    _check(["flow", "sample", str(ckpt), "--n", "2", "--out", str(tmp_path / "g.png")], capsys)
    # a flow run directory being resumed
    from cifarb.flows.configs import preset

    run = tmp_path / "flowrun"
    RunDir(run).create().write_manifest({"kind": "flow", "config": preset("tiny").to_dict(), "epochs": 1,
                                         "dataset": "cifar10"})
    _flow_payload(run / "checkpoints" / "last.pt", marker)
    root = write_cifar10_root(tmp_path / "data", n_train=32, n_test=16)
    _check(["flow", "train", "--out", str(run), "--resume", "--root", str(root), "--trust-local", "--no-progress"],
           capsys)
    # --flow of `train --aug flowaug` goes through the same loader
    _check(["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "flowaug", "--flow", str(ckpt),
            "--root", str(root), "--trust-local", "--out", str(tmp_path / "t"), "--no-progress"], capsys, codes=(1, 2))


def test_flowaug_pool_shards(tmp_path, marker):
    from cifarb.augment.flowaug import FlowAug, FlowAugOptions
    from test_flowaug_core import _batch, _write_flow

    flow = _write_flow(tmp_path / "flow.pt")
    x, y = _batch(8)
    aug = FlowAug(FlowAugOptions(flow, p=1.0, mode="offline", pool=2, cache=tmp_path / "cache", progress=False))
    aug.attach(x, y)
    good = aug._pool.clone()
    shard = next(aug.pool_dir.glob("shard_*.npz"))
    with open(shard, "wb") as fh:  # an object array in the shard is a pickle inside the .npz
        np.savez(fh, images=np.array([Payload(marker)], dtype=object))
    again = FlowAug(FlowAugOptions(flow, p=1.0, mode="offline", pool=2, cache=tmp_path / "cache", progress=False))
    again.attach(x, y)  # the damaged cache is rebuilt, never unpickled
    assert torch.equal(again._pool, good)


def test_cifar_pickles_under_trust_local(tmp_path, marker, capsys):
    root = write_cifar10_root(tmp_path / "data", n_train=10, n_test=10)
    batch = root / "cifar-10-batches-py" / "test_batch"
    with open(batch, "wb") as fh:
        pickle.dump({"data": Payload(marker), "labels": [0]}, fh, protocol=2)
    err = _check(["eval", "--model", "resnet20", "--dataset", "cifar10-b", "--root", str(root), "--trust-local"],
                 capsys)
    assert "test_batch" in err


def test_predictions_and_bundled_npz(tmp_path, marker, capsys):
    preds = tmp_path / "preds.npy"
    np.save(preds, np.array([Payload(marker)] * 3, dtype=object), allow_pickle=True)
    _check(["metrics", str(preds), "--dataset", "cifar10-b"], capsys)
    npz = tmp_path / "preds.npz"
    np.savez(npz, predictions=np.array([Payload(marker)], dtype=object))
    _check(["metrics", str(npz), "--dataset", "cifar10-b"], capsys)
    from cifarb.data._npz import read_npz
    from cifarb.errors import CifarbError

    with pytest.raises(CifarbError):
        read_npz(npz, "bundled labels")


def test_a_torch_zip_whose_data_pkl_is_the_payload(tmp_path, marker, capsys):
    # not made by torch.save: a hand-built archive whose data.pkl is a bare payload pickle
    path = tmp_path / "hand.pt"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hand/data.pkl", pickle.dumps(Payload(marker), protocol=2))
        z.writestr("hand/version", "3\n")
        z.writestr("hand/byteorder", "little")
    path.write_bytes(buf.getvalue())
    _check(["eval", "--model", str(path), "--arch", "resnet20", "--dataset", "cifar10-b",
            "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2"], capsys)
    # a legacy (non-zip) torch pickle
    legacy = tmp_path / "legacy.pt"
    torch.save({"evil": Payload(marker)}, legacy, _use_new_zipfile_serialization=False)
    _check(["eval", "--model", str(legacy), "--arch", "resnet20", "--dataset", "cifar10-b",
            "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2"], capsys)


def test_convert_checkpoint_only_with_trust_this_file(tmp_path, marker, capsys):
    ckpt = _torch_payload(tmp_path / "w.pt", marker)
    err = _check(["convert-checkpoint", str(ckpt)], capsys, codes=(2,))
    assert "--trust-this-file" in err
    assert json.loads(json.dumps({"ok": True}))  # the marker fixture checks nothing ran


def test_convert_checkpoint_turns_an_old_training_checkpoint_into_a_weights_only_one(tmp_path, capsys):
    old = tmp_path / "old.pt"
    state = build_model("resnet20").state_dict()
    rng = np.random.get_state()
    torch.save({"model": state, "rng": {"numpy": rng, "torch": torch.get_rng_state()}, "lr": np.float64(0.1),
                "where": Path("/x"), "arr": np.arange(3)}, old)
    with pytest.raises(Exception, match="Unsupported global"):
        torch.load(old, weights_only=True)
    new = tmp_path / "new.pt"
    assert main(["convert-checkpoint", str(old), "--out", str(new), "--trust-this-file"]) == 0
    assert "weights_only=True" in capsys.readouterr().out
    back = torch.load(new, weights_only=True)
    assert back["lr"] == 0.1 and back["where"] == "/x" and torch.equal(back["arr"], torch.arange(3))
    assert back["rng"]["numpy"]["kind"] == "MT19937" and back["rng"]["numpy"]["pos"] == rng[2]
    np.testing.assert_array_equal(back["rng"]["numpy"]["key"].numpy(), rng[1])
    assert all(torch.equal(back["model"][k], v) for k, v in state.items())
    # the engine restores the converted numpy state exactly
    from cifarb.train.engine import _set_rng_state

    _set_rng_state({"torch": torch.get_rng_state(), "numpy": back["rng"]["numpy"],
                    "python": __import__("random").getstate()})
    now = np.random.get_state()
    assert now[2] == rng[2] and np.array_equal(now[1], rng[1])
