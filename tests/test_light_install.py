"""The light install: `pip install cifarb` runs metrics, report and compare without torch or OpenCV.

Import isolation stands in for a fresh environment: stub `torch`, `torchvision` and `cv2` packages first
on PYTHONPATH raise ModuleNotFoundError on import, as a missing package does (None in sys.modules would
be simpler, but scipy then mistakes the None for an imported torch). The packaging metadata is checked
separately.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures_runs"

ISOLATED = """
import sys
import cifarb
from cifarb.cli import main
"""
STUB = "raise ModuleNotFoundError(\"No module named '{name}' (test stub)\", name='{name}')\n"


def run_isolated(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    stubs = tmp_path / "stubs"
    for name in ("torch", "torchvision", "cv2"):
        (stubs / name).mkdir(parents=True, exist_ok=True)
        (stubs / name / "__init__.py").write_text(STUB.format(name=name))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(stubs), str(REPO / "src")]))
    proc = subprocess.run([sys.executable, "-c", ISOLATED + code], capture_output=True, text=True, timeout=180,
                          cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_metrics_report_compare_and_reference_work_without_torch_and_opencv(tmp_path):
    np.save(tmp_path / "p.npy", np.random.default_rng(0).integers(0, 10, 10_000))
    pd.DataFrame({"index": range(6), "label": [0, 1, 0, 1, 0, 1], "group": [0, 0, 1, 1, 0, 1]}).to_csv(
        tmp_path / "g.csv", index=False)
    pd.DataFrame({"index": range(6), "prediction": [0, 1, 1, 1, 0, 0]}).to_csv(tmp_path / "q.csv", index=False)
    a, b = FIXTURES / "cifar10-fastnet-standard-s0", FIXTURES / "cifar10-fastnet-mixup-s0"
    code = f"""
assert main(["metrics", {str(tmp_path / 'p.npy')!r}, "--dataset", "cifar10-b", "--bootstrap", "20",
             "--json", {str(tmp_path / 'r.json')!r}]) == 0
assert main(["metrics", {str(tmp_path / 'q.csv')!r}, "--groups", {str(tmp_path / 'g.csv')!r},
             "--bootstrap", "0"]) == 0
assert main(["report", {str(a)!r}, {str(b)!r}, "--format", "md"]) == 0
assert main(["compare", {str(a)!r}, {str(b)!r}]) == 0
assert main(["reference", "--list"]) == 0
m = cifarb.compute_metrics([0, 1, 1], [0, 1, 0], [0, 0, 1], bootstrap=0)
assert m.accuracy == 2 / 3
ev = cifarb.evaluate_predictions({str(tmp_path / 'p.npy')!r}, dataset="cifar100-super", bootstrap=0)
assert ev.n_images == 10_000 and "MacroStd" in ev.summary()
loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("torch", "torchvision", "cv2"))
assert not loaded, loaded
try:
    import torch  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("the torch stub did not take effect")
print("OK")
"""
    proc = run_isolated(code, tmp_path)
    assert proc.stdout.strip().endswith("OK")
    assert json.loads((tmp_path / "r.json").read_text())["dataset"] == "cifar10-b"


def test_commands_that_need_an_extra_say_which_in_one_line(tmp_path):
    code = f"""
rc = main(["eval", "--model", "resnet20", "--dataset", "cifar10-b"])
assert rc == 1, rc
rc = main(["data", "make-c", "--dataset", "cifar10", "--out", {str(tmp_path / 'c')!r}])
assert rc == 1, rc
rc = main(["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard", "--out",
           {str(tmp_path / 'run')!r}])
assert rc == 1, rc
"""
    proc = run_isolated(code, tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "cifarb: error: `cifarb eval` needs torch, which is not installed: pip install 'cifarb[torch]'",
        "cifarb: error: `cifarb data make-c` needs OpenCV (cv2), which is not installed: "
        "pip install 'cifarb[corruptions]'",
        "cifarb: error: `cifarb train` needs torch, which is not installed: pip install 'cifarb[torch]'",
    ]
    assert not (tmp_path / "c").exists() and not (tmp_path / "run").exists()


def test_packaging_keeps_torch_and_opencv_in_extras():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"])
    extras = meta["optional-dependencies"]
    for heavy in ("torch", "torchvision", "opencv", "scikit-image"):
        assert heavy not in core
    assert "scipy" in core  # reports and analyses need it
    assert "torch>=2.2,<=2.14.1" in extras["torch"] and "torchvision>=0.17,<=0.29.1" in extras["torch"]
    assert any(d.startswith("opencv-python-headless") for d in extras["corruptions"])
    assert extras["all"] == ["cifarb[torch,corruptions,slurm]"]
    assert "cifarb[all]" in extras["test"]  # README's test command and CI install everything


def test_readme_commands_are_unchanged_and_ci_installs_the_test_extra():
    readme = (REPO / "README.md").read_text()
    assert "pip install torch==2.14.1 torchvision==0.29.1 && pip install -e . && cifarb demo" in readme
    assert ('pip install torch==2.14.1 torchvision==0.29.1 && pip install -e ".[test]" && ruff check . && '
            "python -m pytest -q") in readme
    assert 'pip install -q -e ".[test]"' in (REPO / ".ci/run").read_text()


def test_an_extra_missing_deep_inside_a_command_is_the_same_one_line(monkeypatch, capsys):
    from cifarb.cli import main
    from cifarb.commands import cite

    def needs_cv2(args):
        raise ModuleNotFoundError("No module named 'cv2'", name="cv2")

    monkeypatch.setattr(cite, "run", needs_cv2)
    assert main(["cite"]) == 1
    assert capsys.readouterr().err == ("cifarb: error: `cifarb cite` needs OpenCV (cv2), which is not installed: "
                                       "pip install 'cifarb[corruptions]'\n")

    def needs_other(args):
        raise ModuleNotFoundError("No module named 'nonexistent_pkg'", name="nonexistent_pkg")

    monkeypatch.setattr(cite, "run", needs_other)
    try:
        main(["cite"])
    except ModuleNotFoundError as exc:  # not an extra of cifarb's: a real bug, not hidden
        assert exc.name == "nonexistent_pkg"
    else:
        raise AssertionError("an unrelated missing module must propagate")
