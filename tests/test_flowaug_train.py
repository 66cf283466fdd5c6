"""FlowAug inside `cifarb train` (engineer D's loop) on the real slice: online and offline, manifest, clear errors."""

from __future__ import annotations

import json

import pytest

from cifarb.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_flow(tmp_path_factory):
    from test_flowaug_core import _write_flow

    return _write_flow(tmp_path_factory.mktemp("flow") / "flow.pt")


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_train_with_standard_plus_flowaug(tiny_flow, shared_data, tmp_path, mode):
    out = tmp_path / f"run-{mode}"
    rc = main(["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard+flowaug",
               "--flow", str(tiny_flow), "--flowaug-mode", mode, "--flowaug-p", "0.5", "--flowaug-swap", "class",
               "--epochs", "1", "--batch-size", "32", "--limit-train", "64", "--root", str(shared_data),
               "--trust-local", "--out", str(out), "--no-eval", "--no-progress"])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    piece = next(p for p in manifest["augment"]["pieces"] if p["name"] == "flowaug")
    assert piece["mode"] == mode and piece["swap"] == "class" and piece["p"] == 0.5
    assert len(piece["flow_sha256"]) == 64
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["epoch"] == 1


def test_train_refuses_a_classifier_checkpoint_as_flow(shared_data, shared_models, tmp_path, capsys):
    out = tmp_path / "bad"
    rc = main(["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard+flowaug",
               "--flow", str(shared_models / "resnet20-12fca82f.th"), "--epochs", "1", "--limit-train", "64",
               "--root", str(shared_data), "--trust-local", "--out", str(out), "--no-progress"])
    assert rc in (1, 2)
    assert "not a cifarb flow checkpoint" in capsys.readouterr().err
    assert not out.exists()
