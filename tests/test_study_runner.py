"""Study runner: expansion, dry run, resumability and launchers, with a cheap stand-in for cifarb."""

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
from cifarb.study.config import load_config, parse_config
from cifarb.study.runner import plan_study, run_study

# A stand-in for `python -m cifarb` that writes what train/eval would (manifest, result JSONs) and logs
# each call. FAKE_FAIL=<cell name> makes training of that cell die after its manifest, like a killed run.
FAKE = r'''
import json, os, sys
from pathlib import Path
argv = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a") as fh:
    fh.write(json.dumps(argv) + "\n")
cmd, rest = argv[0], argv[1:]
def opt(name):
    return rest[rest.index(name) + 1] if name in rest else None
def result(dataset):
    return {"dataset": dataset, "n_images": 100, "accuracy": 0.5, "macro_std": 0.1}
if cmd == "train":
    out = Path(opt("--out"))
    if out.exists() and any(out.iterdir()) and "--resume" not in rest:
        print("not empty", file=sys.stderr); sys.exit(2)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps({"config": {"arch": opt("--arch")}}))
    if os.environ.get("FAKE_FAIL") == out.name:
        sys.exit(1)
    ds = opt("--dataset")
    (out / "eval").mkdir(exist_ok=True)
    (out / "eval" / f"{ds}-b.json").write_text(json.dumps(result(ds + "-b")))
elif cmd == "eval":
    out = Path(opt("--out")); ds = opt("--dataset"); root = Path(opt("--root"))
    name = ds + "-local" if (root / "CIFAR-10-C" / "marker.json").exists() else ds
    (out / "eval" / f"{name}.json").write_text(json.dumps(result(name)))
'''


def _config(tmp_path: Path, **extra: object) -> dict:
    study = {
        "name": "t",
        "out": str(tmp_path / "study"),
        "datasets": ["cifar10"],
        "archs": ["fastnet", "resnet20"],
        "augs": ["standard", "standard+mixup"],
        "seeds": [0, 1],
        "root": str(tmp_path / "data"),
        "train_command": [sys.executable, str(tmp_path / "fake.py")],
        "eval_command": [sys.executable, str(tmp_path / "fake.py")],
    }
    study.update(extra)
    return {"study": study}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "fake.py").write_text(FAKE)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    (tmp_path / "data").mkdir()
    return calls


def _calls(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_toml(path: Path, cfg: dict) -> Path:
    lines = ["[study]"]
    for k, v in cfg["study"].items():
        lines.append(f"{k} = {json.dumps(v)}")
    for ov in cfg.get("override", []):
        lines.append("[[override]]")
        match = ", ".join(f"{k} = {json.dumps(v)}" for k, v in ov["match"].items())
        lines.append(f"match = {{ {match} }}")
        lines += [f"{k} = {json.dumps(v)}" for k, v in ov.items() if k != "match"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_expansion_names_and_overrides(tmp_path: Path) -> None:
    cfg = _config(tmp_path, epochs=3)
    cfg["override"] = [{"match": {"aug": "standard+mixup", "seed": 1}, "epochs": 7, "train_args": ["--lr", "0.2"]}]
    study = parse_config(cfg)
    names = [c.name for c in study.cells]
    assert names == [
        "cifar10-fastnet-standard-s0", "cifar10-fastnet-standard-s1",
        "cifar10-fastnet-standard_mixup-s0", "cifar10-fastnet-standard_mixup-s1",
        "cifar10-resnet20-standard-s0", "cifar10-resnet20-standard-s1",
        "cifar10-resnet20-standard_mixup-s0", "cifar10-resnet20-standard_mixup-s1",
    ]
    by_name = {c.name: c for c in study.cells}
    assert by_name["cifar10-fastnet-standard_mixup-s1"].settings.epochs == 7
    assert by_name["cifar10-fastnet-standard_mixup-s1"].settings.train_args == ("--lr", "0.2")
    assert by_name["cifar10-fastnet-standard_mixup-s0"].settings.epochs == 3
    # names do not depend on the order the matrix is written in
    cfg2 = _config(tmp_path, epochs=3, augs=["standard+mixup", "standard"], seeds=[1, 0])
    assert sorted(c.name for c in parse_config(cfg2).cells) == sorted(names)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"colour": "red"}, "unknown keys ['colour']"),
        ({"seeds": [0, 0]}, "seeds"),
        ({"seeds": [True]}, "seeds"),
        ({"datasets": ["imagenet"]}, "unknown training datasets"),
        ({"epochs": 0}, "epochs must be positive"),
        ({"epochs": "ten"}, "epochs must be int"),
        ({"trust_local": 1}, "trust_local must be bool"),
        ({"evals": ["c", "imagenet-c"]}, "unknown entries"),
    ],
)
def test_config_errors_name_the_problem(tmp_path: Path, change: dict, needle: str, capsys) -> None:
    path = _write_toml(tmp_path / "bad.toml", _config(tmp_path, **change))
    assert main(["study", str(path), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert needle in err and "bad.toml" in err


def test_override_that_matches_nothing_is_an_error(tmp_path: Path, capsys) -> None:
    cfg = _config(tmp_path)
    cfg["override"] = [{"match": {"aug": "cutmix"}, "epochs": 2}]
    path = _write_toml(tmp_path / "s.toml", cfg)
    assert main(["study", str(path), "--dry-run"]) == 1
    assert "matches no cell" in capsys.readouterr().err


def test_bad_toml_and_missing_config(tmp_path: Path, capsys) -> None:
    (tmp_path / "x.toml").write_text("[study\n")
    assert main(["study", str(tmp_path / "x.toml")]) == 1
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["study", str(tmp_path / "nope.toml")]) == 1
    assert "cpu-slice" in capsys.readouterr().err  # lists the bundled configs


def test_bundled_configs_expand() -> None:
    cpu = load_config("cpu-slice")
    assert {c.arch for c in cpu.cells} == {"fastnet"}
    assert {c.seed for c in cpu.cells} == {0, 1}
    assert {"standard", "standard+autoaugment", "standard+augmix", "standard+mixup"} <= {c.aug for c in cpu.cells}
    assert all(c.settings.trust_local and c.settings.root == "../shared/data" for c in cpu.cells)
    paper = load_config("paper")
    assert {c.dataset for c in paper.cells} == {"cifar10", "cifar100"}
    flow = [c for c in paper.cells if c.aug == "standard+flowaug"]
    assert flow and all("--flow" in c.settings.train_args for c in flow)
    assert paper.slurm["gpus_per_node"] == 1


def test_dry_run_lists_cells_and_runs_nothing(tmp_path: Path, fake: Path, capsys) -> None:
    path = _write_toml(tmp_path / "s.toml", _config(tmp_path))
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "8 cells" in out and out.count(" new ") == 8
    assert "cifar10-resnet20-standard_mixup-s1" in out
    assert "left out in 8 cell(s): cifar10-c" in out
    assert _calls(fake) == [] and not (tmp_path / "study").exists()


def test_resume_skips_finished_cells_and_resumes_broken_ones(tmp_path: Path, fake: Path, monkeypatch, capsys) -> None:
    cfg = _config(tmp_path, archs=["fastnet"], augs=["standard", "mixup"], seeds=[0])
    path = _write_toml(tmp_path / "s.toml", cfg)
    monkeypatch.setenv("FAKE_FAIL", "cifar10-fastnet-mixup-s0")
    assert main(["study", str(path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "FAIL  cifar10-fastnet-mixup-s0" in captured.out
    assert "1 cell(s) failed" in captured.err
    first = _calls(fake)
    assert [c[0] for c in first] == ["train", "train"]
    assert all("--resume" not in c for c in first)
    log = tmp_path / "study" / "_logs" / "cifar10-fastnet-mixup-s0.log"
    assert "exit status 1" in log.read_text()

    # dry run now sees one finished and one interrupted cell
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 done" in out and "1 resume" in out

    monkeypatch.delenv("FAKE_FAIL")
    assert main(["study", str(path), "--no-progress"]) == 0
    second = _calls(fake)[len(first):]
    assert len(second) == 1 and second[0][0] == "train" and "--resume" in second[0]
    assert "cifar10-fastnet-mixup-s0" in second[0][second[0].index("--out") + 1]
    assert "1 cells run, 1 already done" in capsys.readouterr().out

    # everything done: nothing runs
    assert main(["study", str(path), "--no-progress"]) == 0
    assert len(_calls(fake)) == len(first) + 1


def test_corrupt_eval_json_is_redone_and_local_c_is_evaluated(tmp_path: Path, fake: Path) -> None:
    c_root = tmp_path / "c-local"
    (c_root / "CIFAR-10-C").mkdir(parents=True)
    (c_root / "CIFAR-10-C" / "labels.npy").write_bytes(b"")
    (c_root / "CIFAR-10-C" / "marker.json").write_text("{}")
    cfg = _config(tmp_path, archs=["fastnet"], augs=["standard"], seeds=[0], c_root=str(c_root))
    study = parse_config(cfg)
    outcomes = run_study(study, progress=False)
    assert [o.ran for o in outcomes] == [["train", "eval cifar10-c"]]
    rundir = tmp_path / "study" / "cifar10-fastnet-standard-s0"
    assert json.loads((rundir / "eval" / "cifar10-c-local.json").read_text())["dataset"] == "cifar10-c-local"
    assert [p.state for p in plan_study(study)] == ["done"]

    # a truncated -C result is not "done": only that evaluation is redone
    (rundir / "eval" / "cifar10-c-local.json").write_text('{"dataset": "cifar10-c-lo')
    assert [p.state for p in plan_study(study)] == ["evaluate"]
    outcomes = run_study(study, progress=False)
    assert [o.ran for o in outcomes] == [["eval cifar10-c"]]
    assert [p.state for p in plan_study(study)] == ["done"]


def test_foreign_directory_is_reported_not_touched(tmp_path: Path, fake: Path) -> None:
    study = parse_config(_config(tmp_path, archs=["fastnet"], augs=["standard"], seeds=[0]))
    rundir = tmp_path / "study" / "cifar10-fastnet-standard-s0"
    rundir.mkdir(parents=True)
    (rundir / "notes.txt").write_text("mine")
    [plan] = plan_study(study)
    assert plan.state == "broken" and "no manifest.json" in plan.problem
    [outcome] = run_study(study, progress=False)
    assert not outcome.ok and "move it away" in outcome.error
    assert _calls(fake) == [] and (rundir / "notes.txt").read_text() == "mine"


def test_parallel_local_launcher(tmp_path: Path, fake: Path) -> None:
    study = parse_config(_config(tmp_path))
    outcomes = run_study(study, jobs=3, progress=False)
    assert len(outcomes) == 8 and all(o.ok and o.ran == ["train"] for o in outcomes)
    assert {Path(c[c.index("--out") + 1]).name for c in _calls(fake)} == {c.name for c in study.cells}


def test_slurm_path_through_submitit_debug_executor(tmp_path: Path, fake: Path, monkeypatch, capsys) -> None:
    cfg = _config(tmp_path, archs=["fastnet"], augs=["standard", "mixup"], seeds=[0])
    path = _write_toml(tmp_path / "s.toml", cfg)
    with open(path, "a") as fh:
        fh.write('[slurm]\ntimeout_min = 5\nslurm_partition = "gpu"\n')
    monkeypatch.setenv("FAKE_FAIL", "cifar10-fastnet-mixup-s0")
    assert main(["study", str(path), "--launcher", "slurm", "--submitit-cluster", "debug", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "ok    cifar10-fastnet-standard-s0" in out and "FAIL  cifar10-fastnet-mixup-s0" in out
    assert (tmp_path / "study" / "_submitit").is_dir()
    monkeypatch.delenv("FAKE_FAIL")
    assert main(["study", str(path), "--launcher", "slurm", "--submitit-cluster", "debug", "--no-progress"]) == 0
    assert "--resume" in _calls(fake)[-1]


def test_slurm_without_slurm_is_a_clear_error(tmp_path: Path, fake: Path, capsys) -> None:
    path = _write_toml(tmp_path / "s.toml", _config(tmp_path, archs=["fastnet"], augs=["standard"], seeds=[0]))
    assert main(["study", str(path), "--launcher", "slurm", "--no-progress"]) == 1
    assert "--launcher local" in capsys.readouterr().err
    with open(path, "a") as fh:
        fh.write("[slurm]\nwallclock = 5\n")
    assert main(["study", str(path), "--launcher", "slurm", "--submitit-cluster", "debug", "--no-progress"]) == 1
    assert "[slurm] parameters rejected" in capsys.readouterr().err


def test_slurm_path_through_submitit_local_executor_pickles_cells(tmp_path: Path, fake: Path) -> None:
    # LocalExecutor runs each job in a fresh process, so cells and run_cell must survive pickling.
    study = parse_config(_config(tmp_path, archs=["fastnet"], augs=["standard"], seeds=[0, 1]))
    outcomes = run_study(study, launcher="slurm", cluster="local", progress=False)
    assert sorted(o.name for o in outcomes if o.ok and o.ran == ["train"]) == [c.name for c in study.cells]
    assert [p.state for p in plan_study(study)] == ["done", "done"]


@pytest.mark.subprocess
def test_sigterm_stops_running_children(tmp_path: Path, fake: Path, monkeypatch) -> None:
    # a train that hangs: the study must not leave it running when the study itself is terminated
    slow = tmp_path / "slow.py"
    slow.write_text("import os, sys, time\nopen(os.environ['PIDFILE'], 'w').write(str(os.getpid()))\ntime.sleep(120)\n")
    cfg = _config(tmp_path, archs=["fastnet"], augs=["standard"], seeds=[0],
                  train_command=[sys.executable, str(slow)])
    path = _write_toml(tmp_path / "s.toml", cfg)
    pidfile = tmp_path / "child.pid"
    env = {**os.environ, "PIDFILE": str(pidfile)}
    study = subprocess.Popen([sys.executable, "-m", "cifarb", "study", str(path), "--no-progress"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline and study.poll() is None, study.communicate()
        time.sleep(0.1)
    child = int(pidfile.read_text())
    study.send_signal(signal.SIGTERM)
    _, err = study.communicate(timeout=60)
    assert study.returncode == 130 and "interrupted" in err
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the hanging child is gone, not orphaned
    log = (tmp_path / "study" / "_logs" / "cifar10-fastnet-standard-s0.log").read_text()
    assert "exit status -15" in log
