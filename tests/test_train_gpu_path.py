"""The GPU code path run on CPU: bf16 autocast, torch.compile (inductor + the system C compiler),
channels_last, the DevicePath transfers, DDP (gloo) with 1 and 2 processes, and resume across compile/AMP.

"It trains" = the real `Trainer.train_step` overfits one fixed batch at a fixed learning rate: the last
loss is below 0.9x the first. Every compiled model here is fastnet on a 16-image batch in fp32, so the
suite pays for one inductor compile; the others hit inductor's graph cache.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cifarb.train import TrainConfig
from cifarb.train import ddp as ddp_mod
from cifarb.train.device import DevicePath
from cifarb.train.engine import Trainer, plan, run
from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 5
FIXED_LR = {"schedule": "constant", "warmup": 0.0}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_cifar10_root(tmp_path_factory.mktemp("data"), n_train=32, n_test=16)


def make_trainer(root: Path, out: Path, **settings) -> Trainer:
    cfg = TrainConfig(dataset="cifar10", arch="fastnet", aug="none", epochs=1, batch_size=16, limit_train=16,
                      root=str(root), trust_local=True, out=str(out), eval=False, progress=False, lr=0.05,
                      hparams=dict(FIXED_LR), **settings)
    return Trainer(plan(cfg))


def overfit(trainer: Trainer, steps: int = STEPS) -> list[float]:
    """Losses of `steps` optimizer steps on the same batch (each is the loss before its update)."""
    images, labels = next(trainer.batches.epoch(0))
    return [float(trainer.train_step(images, labels, epoch=0, step=k)[0]) for k in range(steps)]


def assert_trains(losses: list[float]) -> None:
    assert all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < 0.9 * losses[0], losses


def test_eager_fp32_channels_last_trains(root, tmp_path):
    trainer = make_trainer(root, tmp_path / "run")
    assert trainer.path.channels_last and trainer.amp_dtype is None
    assert trainer.model.stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert_trains(overfit(trainer))


def test_channels_first_trains(root, tmp_path):
    trainer = make_trainer(root, tmp_path / "run", channels_last=False)
    w = trainer.model.group1.conv1.weight
    assert w.is_contiguous() and not w.is_contiguous(memory_format=torch.channels_last)
    assert_trains(overfit(trainer))


def test_amp_runs_bf16_autocast_on_cpu_and_trains(root, tmp_path):
    trainer = make_trainer(root, tmp_path / "run", amp=True)
    assert trainer.amp_dtype == torch.bfloat16 and not trainer.scaler.is_enabled()  # bf16 needs no scaler
    seen = []
    hook = trainer.model.group1.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    losses = overfit(trainer)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the convolutions really ran in bf16
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32
    assert_trains(losses)
    manifest_runtime = trainer.path.describe()
    assert manifest_runtime["amp"] is True and manifest_runtime["amp_dtype"] == "bfloat16"


def test_amp_loss_is_computed_in_fp32(root, tmp_path):
    """bf16 logits, fp32 loss (the pipeline casts the logits before the loss, which runs outside autocast):
    the label-smoothed cross-entropy of the same logits cast to fp32 by hand."""
    trainer = make_trainer(root, tmp_path / "run", amp=True)
    seen = {}
    trainer.forward_model.register_forward_hook(lambda m, i, o: seen.update(logits=o.detach().clone()))
    images, labels = next(trainer.batches.epoch(0))
    loss, _ = trainer.train_step(images, labels, epoch=0, step=0)
    logits = seen["logits"]
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    smoothing = trainer.p.recipe.label_smoothing
    by_hand = torch.nn.functional.cross_entropy(logits.float(), labels, label_smoothing=smoothing)
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-6)


def test_compile_on_cpu_trains_and_keeps_plain_weights(root, tmp_path):
    trainer = make_trainer(root, tmp_path / "run", compile=True)
    assert isinstance(trainer.forward_model, torch._dynamo.eval_frame.OptimizedModule)
    assert_trains(overfit(trainer))
    keys = list(trainer.state_dict(1, [], 0.0)["model"])
    assert keys and not any("_orig_mod" in k or k.startswith("module.") for k in keys)


def test_device_path_on_cpu():
    path = DevicePath(torch.device("cpu"), amp=True, compile=False, channels_last=True)
    t = torch.zeros(2, 3, 4, 4)
    assert path.to_device(t) is t  # no copy, no pinning (pinning needs a CUDA runtime)
    assert not path.pinned and not path.needs_grad_scaler
    assert path.memory_format(t).is_contiguous(memory_format=torch.channels_last)
    assert path.memory_format(torch.zeros(2, 3)).shape == (2, 3)
    with path.autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with DevicePath(torch.device("cpu")).autocast():
        assert not torch.is_autocast_enabled("cpu")
    path.synchronize()  # a no-op on CPU


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_world_size_1_wraps_and_trains(root, tmp_path, monkeypatch):
    # the environment torchrun --nproc_per_node=1 sets: one process, but the DDP path (gloo) all the same
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    info = ddp_mod.init(torch.device("cpu"))
    try:
        assert info.enabled and torch.distributed.get_world_size() == 1
        assert torch.distributed.get_backend() == "gloo"
        trainer = make_trainer(root, tmp_path / "run")
        assert isinstance(trainer.forward_model, torch.nn.parallel.DistributedDataParallel)
        assert_trains(overfit(trainer))
        trainer.train_epoch(0)  # the epoch's collectives (loss sums, NaN flag, buffer broadcast)
    finally:
        ddp_mod.shutdown(info)
    assert not torch.distributed.is_initialized()


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from cifarb.train import TrainConfig, ddp
    from cifarb.train.engine import Trainer, plan

    torch.set_num_threads(1)
    root, out, dump = sys.argv[1:4]
    info = ddp.init(torch.device("cpu"))
    cfg = TrainConfig(dataset="cifar10", arch="fastnet", aug="none", epochs=1, batch_size=16, limit_train=16,
                      root=root, trust_local=True, out=out, eval=False, progress=False, lr=0.05,
                      hparams={"schedule": "constant", "warmup": 0.0})
    trainer = Trainer(plan(cfg, dist_info=info))
    assert isinstance(trainer.forward_model, torch.nn.parallel.DistributedDataParallel)
    images, labels = next(trainer.batches.epoch(0))
    losses = [float(trainer.train_step(images, labels, epoch=0, step=k)[0]) for k in range(int(sys.argv[4]))]
    ddp.sync_buffers(trainer.model, info)
    torch.save({k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, f"{dump}/w{info.rank}.pt")
    with open(f"{dump}/loss{info.rank}.json", "w") as fh:
        json.dump({"losses": losses, "world": torch.distributed.get_world_size(), "batch": len(labels)}, fh)
    ddp.shutdown(info)
    """
)


@pytest.mark.subprocess
def test_ddp_world_size_2_gloo_trains_in_step(root, tmp_path):
    script = tmp_path / "ddp_overfit.py"
    script.write_text(DDP_SCRIPT)
    dump = tmp_path / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(root), str(tmp_path / "run"), str(dump), str(STEPS)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in (0, 1):
        report = json.loads((dump / f"loss{rank}.json").read_text())
        assert report["world"] == 2 and report["batch"] == 8  # each rank holds half of the global batch
        assert_trains(report["losses"])
    w0, w1 = torch.load(dump / "w0.pt"), torch.load(dump / "w1.pt")
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key  # averaged gradients: the ranks stay identical


class _Interrupted(Exception):
    pass


def _run_interrupted_after_epoch_1(cfg: TrainConfig, monkeypatch) -> None:
    """Run `cfg`, stopping inside epoch 2 (after epoch 1's checkpoint), as a crash would."""
    real = Trainer.test_epoch
    calls = []

    def test_epoch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise _Interrupted
        return real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "test_epoch", test_epoch)
        with pytest.raises(_Interrupted):
            run(cfg)


# compile and AMP are toggled separately: the compiled graph stays the fp32 one the suite compiles once
@pytest.mark.parametrize(
    "setting,first,then",
    [("compile", True, False), ("compile", False, True), ("amp", True, False)],
    ids=["compiled->eager", "eager->compiled", "amp->fp32"],
)
def test_resume_across_compile_and_amp(root, tmp_path, monkeypatch, setting, first, then):
    out = tmp_path / "run"
    cfg = TrainConfig(dataset="cifar10", arch="fastnet", aug="none", epochs=2, batch_size=16, limit_train=32,
                      root=str(root), trust_local=True, out=str(out), eval=False, progress=False, lr=0.05,
                      hparams=dict(FIXED_LR), **{setting: first})
    _run_interrupted_after_epoch_1(cfg, monkeypatch)
    before = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert before["epoch"] == 1
    # the flag now contradicts the saved run: allowed for compile and amp, and recorded
    result = run(TrainConfig(out=str(out), resume=True, progress=False, **{setting: then}))
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]  # it goes on training
    after = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert after["epoch"] == 2
    assert any(not torch.equal(before["model"][k], after["model"][k]) for k in after["model"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runtime"][setting] is first and manifest["config"][setting] is first
    (resume,) = manifest["resumes"]
    assert resume["from_epoch"] == 1
    assert resume["changed"] == {setting: {"from": first, "to": then}}
    assert resume["runtime"][setting] is then
    if setting == "amp":
        assert resume["runtime"]["amp_dtype"] is None and manifest["runtime"]["amp_dtype"] == "bfloat16"
    if then and setting == "compile":
        assert isinstance(result.model, torch.nn.Module) and not hasattr(result.model, "_orig_mod")


def test_resume_still_refuses_a_changed_recipe(root, tmp_path, monkeypatch):
    from cifarb.errors import UsageError

    out = tmp_path / "run"
    cfg = TrainConfig(dataset="cifar10", arch="fastnet", aug="none", epochs=2, batch_size=16, limit_train=32,
                      root=str(root), trust_local=True, out=str(out), eval=False, progress=False, lr=0.05,
                      hparams=dict(FIXED_LR))
    _run_interrupted_after_epoch_1(cfg, monkeypatch)
    with pytest.raises(UsageError, match="--lr"):
        run(TrainConfig(out=str(out), resume=True, lr=0.1, progress=False))
