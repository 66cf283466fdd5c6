"""DDP under torchrun: 2 CPU processes (gloo) end with identical weights, and only rank 0 writes the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.subprocess

# Each rank runs `cifarb train` (cli.main, as `torchrun -m cifarb train` does); ranks other than 0 fail loudly
# if they touch the run directory, and every rank dumps its final weights so the test can compare them.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    from cifarb.cli import main
    from cifarb.runs import rundir
    from cifarb.train import engine

    rank = int(os.environ["RANK"])
    if rank != 0:
        def refuse(*args, **kwargs):
            raise AssertionError(f"rank {rank} wrote to the run directory")
        for name in ("create", "write_manifest", "append_metrics", "truncate_epochs", "save_checkpoint",
                     "write_eval", "write_predictions"):
            setattr(rundir.RunDir, name, refuse)
    # keep the trained model of this rank: the CLI only prints the run directory
    results = []
    real_run = engine.run
    engine.run = lambda cfg, given=None: results.append(real_run(cfg, given)) or results[-1]
    root, out, dump = sys.argv[1:4]
    status = main(["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard", "--epochs", "2",
                   "--batch-size", "16", "--root", root, "--trust-local", "--out", out, "--no-eval",
                   "--no-progress"])
    if status == 0:
        state = {k: v.detach().cpu() for k, v in results[0].model.state_dict().items()}
        torch.save(state, f"{dump}/rank{rank}.pt")
    sys.exit(status)
    """
)


def test_two_cpu_processes_train_identical_weights(tmp_path):
    root = write_cifar10_root(tmp_path / "data", n_train=64, n_test=16)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(script), str(root), str(out), str(dump),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(str(out)) == 1  # rank 0 alone reports the run directory

    w0 = torch.load(dump / "rank0.pt")
    w1 = torch.load(dump / "rank1.pt")
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key  # parameters and BatchNorm statistics

    # rank 0's run directory is complete, written once, and holds the weights both ranks ended with
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runtime"]["world_size"] == 2 and manifest["runtime"]["steps_per_epoch"] == 4
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    # the test split is sharded over the ranks and summed: the logged accuracy is that of all 16 images
    from cifarb.data.readers import load_cifar
    from cifarb.eval import predict
    from cifarb.models import build_model

    net = build_model("resnet20", num_classes=10)
    net.load_state_dict(w0)
    test = load_cifar("cifar10", "test", root=root, trust_local=True)
    pred, _ = predict(net, test.images, manifest["normalization"]["mean"], manifest["normalization"]["std"],
                      batch_size=16, device="cpu")
    assert lines[-1]["test_accuracy"] == pytest.approx(float((pred == test.labels).mean()))
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    for key in w0:
        assert torch.equal(ckpt["model"][key], w0[key]), key
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "manifest.json", "metrics.jsonl"]
