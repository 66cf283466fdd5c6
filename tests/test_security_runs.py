"""One writer per run directory, resume rules, atomic run creation, and study children dying with the driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cifarb.cli import main
from cifarb.errors import CifarbError, UsageError
from cifarb.runs import RunDir
from cifarb.runs.lock import FolderLock, holder_pid, lock_path
from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.usefixtures("one_thread")

_HOLDER = (
    "import sys, time\n"
    "from cifarb.runs.lock import FolderLock\n"
    "lock = FolderLock(sys.argv[1]).acquire()\n"
    "print('locked', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_cifar10_root(tmp_path_factory.mktemp("data"), n_train=32, n_test=16)


@pytest.fixture
def holder():
    """Start another process that holds the lock of a folder; yields a function (folder) -> Popen."""
    procs: list[subprocess.Popen] = []

    def start(folder: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def _train(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard", "--root", str(root),
            "--trust-local", "--batch-size", "16", "--out", str(out), "--no-progress", "--no-eval", *extra]


def _epochs(out: Path) -> list[int]:
    return [r["epoch"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["event"] == "epoch"]


def test_second_train_writer_is_refused_naming_the_pid_and_a_stale_lock_is_recovered(root, tmp_path, holder,
                                                                                      capsys):
    out = tmp_path / "run"
    proc = holder(out)
    assert main(_train(root, out, "--epochs", "1")) == 1
    err = capsys.readouterr().err
    assert f"process {proc.pid}" in err and "in use" in err and err.count("error:") == 1
    assert not out.exists()  # refused before anything was written
    # the holder is killed: its lock file stays, but the OS released the lock
    proc.kill()
    proc.wait()
    assert lock_path(out).exists()
    assert main(_train(root, out, "--epochs", "1")) == 0
    assert _epochs(out) == [1]
    # --resume of a run that another process is still writing
    proc = holder(out)
    assert main(_train(root, out, "--resume")) == 1
    assert f"process {proc.pid}" in capsys.readouterr().err
    # order of checks: a non-empty --out without --resume is a usage error (2) before the lock (1)
    assert main(_train(root, out, "--epochs", "1")) == 2
    assert "--resume" in capsys.readouterr().err


def test_lock_in_process_and_pid_file(tmp_path):
    a, b = FolderLock(tmp_path / "x"), FolderLock(tmp_path / "x")
    with a:
        assert holder_pid(tmp_path / "x") == os.getpid()
        assert not b.try_acquire()
        with pytest.raises(CifarbError, match=f"process {os.getpid()}"):
            b.acquire()
    assert b.try_acquire()
    b.release()
    assert not (tmp_path / "x").exists()  # the lock lives beside the folder, never inside it


def test_train_resume_may_extend_epochs_and_records_it(root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train(root, out, "--epochs", "1")) == 0
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--epochs", "2"]) == 0
    assert _epochs(out) == [1, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["epochs"] == 2 and manifest["hparams"]["epochs"] == 2
    assert manifest["resumes"][-1]["epochs"] == {"from": 1, "to": 2}
    assert manifest["resumes"][-1]["from_epoch"] == 1 and manifest["resumes"][-1]["torch_threads"] >= 1
    capsys.readouterr()
    before = (out / "manifest.json").read_text()
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--epochs", "1"]) == 2
    assert "larger --epochs" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--lr", "0.5"]) == 2
    assert (out / "manifest.json").read_text() == before  # nothing written by a refused resume


def test_a_kill_between_creating_the_run_and_its_manifest_leaves_no_half_run(root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = RunDir.write_manifest

    def killed(self, manifest):
        raise KeyboardInterrupt  # what a kill at this moment leaves: no clean-up code runs

    monkeypatch.setattr(RunDir, "write_manifest", killed)
    assert main(_train(root, out, "--epochs", "1")) == 130
    monkeypatch.setattr(RunDir, "write_manifest", real)
    assert not out.exists()  # a fresh start is still possible: the half-built run has a temporary name
    stale = list(tmp_path.glob(".run.creating-*"))
    assert stale
    # leftovers of a kill inside the run (a checkpoint temp file) and the staging copy are cleaned up
    assert main(_train(root, out, "--epochs", "1")) == 0
    assert not list(tmp_path.glob(".run.creating-*"))
    (out / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"half")
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--epochs", "2"]) == 0
    assert not list(out.rglob("*.tmp"))


def _flow_cfg(**kw):
    from cifarb.flows.configs import preset

    base = dict(image_size=16, levels=2, steps=1, hidden=8, z_dim=3, enc_channels=4, batch_size=16,
                test_batch_size=32, warmup_steps=2, grid_n=4, epochs=1)
    base.update(kw)
    return preset("tiny").replace(**base)


def _flow_data():
    import numpy as np
    import torch

    from cifarb.flows.train import FlowData

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 255, (48, 3, 16, 16)).astype(np.uint8))
    return FlowData(train=x[:32], test=x[32:], dataset="cifar10", verified=False, files={"s": "0" * 64},
                    n_official_test=10000)


def test_flow_resume_keeps_its_epochs_and_follows_the_resume_rule(tmp_path):
    from cifarb.flows.train import train_flow

    out, data = tmp_path / "flow", _flow_data()

    def stop_after_1(msg):
        if msg.startswith("epoch 1/"):
            raise KeyboardInterrupt

    # the config says 1 epoch, the run asked for 3: a resume must finish the 3
    with pytest.raises(KeyboardInterrupt):
        train_flow(_flow_cfg(), out, data=data, epochs=3, progress=False, log=stop_after_1)
    train_flow(None, out, data=data, resume=True, progress=False, log=lambda m: None)
    assert _epochs(out) == [1, 2, 3]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["epochs"] == 3 and manifest["resumes"][-1]["from_epoch"] == 1
    # a larger --epochs extends it (recorded); fewer is a usage error and writes nothing
    train_flow(None, out, data=data, resume=True, epochs=4, progress=False, log=lambda m: None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert _epochs(out) == [1, 2, 3, 4] and manifest["epochs"] == 4
    assert manifest["resumes"][-1]["epochs"] == {"from": 3, "to": 4}
    before = (out / "manifest.json").read_text()
    with pytest.raises(UsageError, match="fewer"):
        train_flow(None, out, data=data, resume=True, epochs=2, progress=False)
    with pytest.raises(UsageError, match="--dataset"):
        train_flow(None, out, data=data, resume=True, dataset="cifar100", progress=False)
    assert (out / "manifest.json").read_text() == before


def test_flow_train_is_locked_and_created_atomically(tmp_path, holder, monkeypatch):
    from cifarb.flows.train import train_flow

    out = tmp_path / "flow"
    proc = holder(out)
    with pytest.raises(CifarbError, match=f"process {proc.pid}"):
        train_flow(_flow_cfg(), out, data=_flow_data(), progress=False)
    assert not out.exists()
    proc.kill()
    proc.wait()
    monkeypatch.setattr(RunDir, "write_manifest", lambda self, m: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train_flow(_flow_cfg(), out, data=_flow_data(), progress=False)
    monkeypatch.undo()
    assert not out.exists() and list(tmp_path.glob(".flow.creating-*"))
    train_flow(_flow_cfg(), out, data=_flow_data(), progress=False, log=lambda m: None)
    assert _epochs(out) == [1] and not list(tmp_path.glob(".flow.creating-*"))


def test_flow_cli_resume_reuses_root_and_trust_local(root, tmp_path, capsys):
    toml = tmp_path / "q.toml"
    toml.write_text('base = "tiny"\nhidden = 8\nsteps = 1\ntrain_limit = 32\ntest_limit = 16\ngrid_n = 2\n'
                    'batch_size = 16\ntest_batch_size = 16\n')
    out = tmp_path / "f"
    assert main(["flow", "train", "--config", str(toml), "--root", str(root), "--trust-local", "--epochs", "2",
                 "--out", str(out), "--no-progress"]) == 0
    (out / "checkpoints" / "last.pt").unlink()  # as if killed before the first checkpoint... then rerun
    (out / "metrics.jsonl").unlink()
    # the documented resume: no --root, no --trust-local, no --epochs
    assert main(["flow", "train", "--out", str(out), "--resume", "--no-progress"]) == 0, capsys.readouterr().err
    assert _epochs(out) == [1, 2]
    assert json.loads((out / "manifest.json").read_text())["epochs"] == 2


def test_names_are_single_path_components(tmp_path, capsys):
    from cifarb.flows.configs import load_config
    from cifarb.study.config import parse_config

    bad = tmp_path / "evil.toml"
    bad.write_text('base = "tiny"\nname = "../../escaped"\n')
    with pytest.raises(CifarbError, match="plain name"):
        load_config(str(bad))
    assert main(["flow", "train", "--config", str(bad), "--no-progress"]) == 1
    assert "plain name" in capsys.readouterr().err
    with pytest.raises(CifarbError, match="plain name"):
        parse_config({"study": {"name": "../../x", "datasets": ["cifar10"], "archs": ["resnet20"],
                                "augs": ["standard"], "seeds": [0]}})


_SLOW = "import os, time\nopen(os.environ['PIDFILE'], 'a').write(f'{os.getpid()}\\n')\ntime.sleep(120)\n"


_QUICK = (
    "import json, sys\nfrom pathlib import Path\n"
    "out = Path(sys.argv[sys.argv.index('--out') + 1])\n"
    "(out / 'eval').mkdir(parents=True, exist_ok=True)\n"
    "(out / 'manifest.json').write_text('{}')\n"
    "(out / 'eval' / 'cifar10-b.json').write_text(json.dumps("
    "{'dataset': 'cifar10-b', 'n_images': 1, 'accuracy': 0.5, 'macro_std': 0.1}))\n"
)


def _study_toml(tmp_path: Path, train: Path, seeds: list[int]) -> Path:
    fake = tmp_path / "fake_eval.py"
    fake.write_text("import sys\n")
    lines = ["[study]", 'name = "t"', f'out = "{tmp_path / "study"}"', 'datasets = ["cifar10"]',
             'archs = ["fastnet"]', 'augs = ["standard"]', f"seeds = {seeds}", f'root = "{tmp_path}"',
             f'train_command = ["{sys.executable}", "{train}"]', f'eval_command = ["{sys.executable}", "{fake}"]']
    path = tmp_path / "s.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_for_pids(pidfile: Path, n: int, proc: subprocess.Popen) -> list[int]:
    deadline = time.monotonic() + 60
    while True:
        pids = [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []
        if len(pids) >= n:
            return pids
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of ours does not count
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_study_children_die_with_a_killed_driver_and_a_second_study_leaves_busy_cells_alone(tmp_path, capsys):
    slow = tmp_path / "slow.py"
    slow.write_text(_SLOW)
    path = _study_toml(tmp_path, slow, [0, 1])
    pidfile = tmp_path / "child.pid"
    env = {**os.environ, "PIDFILE": str(pidfile)}
    driver = subprocess.Popen([sys.executable, "-m", "cifarb", "study", str(path), "--no-progress", "--jobs", "2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        children = _wait_for_pids(pidfile, 2, driver)
        # a second study on the same folder while the first runs: both cells are busy, none is touched
        assert main(["study", str(path), "--no-progress"]) == 1
        out = capsys.readouterr()
        assert f"process {driver.pid}" in out.out + out.err
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        for pid in children:
            assert _gone(pid), f"child {pid} outlived its killed study driver"
        # the next study run takes the cells up again (their locks died with the driver)
        slow.write_text(_QUICK)
        assert main(["study", str(path), "--no-progress"]) == 0, capsys.readouterr()
        assert all((tmp_path / "study" / f"cifar10-fastnet-standard-s{s}" / "eval" / "cifar10-b.json").is_file()
                   for s in (0, 1))
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.communicate()
