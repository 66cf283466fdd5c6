"""`cifarb metrics --dataset cifar10.1`: labels from the data root (git-blob verified or --trust-local),
accuracy and class accuracy with CIs, null subgroup keys, and clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cifarb.cli import main
from cifarb.metrics import validate_result
from cifarb.reference import load_reference

REPO = Path(__file__).resolve().parents[1]
SHARED_REPO = REPO.parent / "shared" / "cifar10.1-repo"


@pytest.fixture
def root(tmp_path) -> Path:
    if not (SHARED_REPO / "cifar10.1_v6_labels.npy").is_file():
        pytest.skip(f"CIFAR-10.1 labels not found at {SHARED_REPO} (../shared is absent)")
    (tmp_path / "root" / "CIFAR-10.1").mkdir(parents=True)
    for v in ("v4", "v6"):
        shutil.copy(SHARED_REPO / f"cifar10.1_{v}_labels.npy", tmp_path / "root" / "CIFAR-10.1")
    return tmp_path / "root"


def _run(tmp_path, preds_file, *extra):
    out = tmp_path / "r.json"
    rc = main(["metrics", str(preds_file), "--dataset", "cifar10.1", "--bootstrap", "100", "--json", str(out),
               *extra])
    return rc, (json.loads(out.read_text()) if rc == 0 else None)


@pytest.mark.parametrize("version", ["v6", "v4"])
def test_verified_labels_give_the_shipped_accuracy(root, tmp_path, version):
    ref = load_reference()
    np.save(tmp_path / "p.npy", ref.cifar10_1[version]["wrn_28_10"])
    rc, result = _run(tmp_path, tmp_path / "p.npy", "--root", str(root), "--cifar10-1-version", version)
    assert rc == 0
    validate_result(result)
    assert result["dataset"] == "cifar10.1" and result["data_verified"] is True
    assert result["n_images"] == result["n_official"] == {"v6": 2000, "v4": 2021}[version]
    assert result["accuracy"] == ref.cifar10_1_accuracy[version]["wrn_28_10"].accuracy
    lo, hi = result["ci95"]["accuracy"]
    assert lo <= result["accuracy"] <= hi
    assert result["macro_std"] is None and result["subgroup_accuracy"] is None and result["cells"] == []
    assert len(result["class_accuracy"]) == 10 and result["settings"]["cifar10_1_version"] == version


def test_subset_csv_and_trust_local(root, tmp_path, capsys):
    labels = np.load(root / "CIFAR-10.1" / "cifar10.1_v6_labels.npy")
    preds = load_reference().cifar10_1["v6"]["nas"]
    idx = np.arange(0, 2000, 3)
    pd.DataFrame({"index": idx, "prediction": preds[idx]}).to_csv(tmp_path / "s.csv", index=False)
    rc, result = _run(tmp_path, tmp_path / "s.csv", "--root", str(root))
    assert rc == 0 and result["n_images"] == idx.size
    assert result["accuracy"] == pytest.approx(float((preds[idx] == labels[idx]).mean()), abs=1e-15)
    # a changed label file is refused unless --trust-local, which then records data_verified: false
    changed = labels.copy()
    changed[0] = (changed[0] + 1) % 10
    np.save(root / "CIFAR-10.1" / "cifar10.1_v6_labels.npy", changed)
    np.save(tmp_path / "p.npy", preds)
    capsys.readouterr()
    assert _run(tmp_path, tmp_path / "p.npy", "--root", str(root))[0] == 1
    assert "--trust-local" in capsys.readouterr().err
    rc, result = _run(tmp_path, tmp_path / "p.npy", "--root", str(root), "--trust-local")
    assert rc == 0 and result["data_verified"] is False


def test_clear_errors(tmp_path, capsys):
    np.save(tmp_path / "p.npy", np.zeros(2000, dtype=np.int64))
    assert _run(tmp_path, tmp_path / "p.npy", "--root", str(tmp_path))[0] == 1
    err = capsys.readouterr().err
    assert "cifar10.1_v6_labels.npy is missing" in err and "cifarb data fetch cifar10.1" in err
    (tmp_path / "CIFAR-10.1").mkdir()
    np.save(tmp_path / "CIFAR-10.1" / "cifar10.1_v4_labels.npy", np.zeros(2021, dtype=np.int32))
    assert _run(tmp_path, tmp_path / "p.npy", "--root", str(tmp_path), "--cifar10-1-version", "v4",
                "--trust-local")[0] == 1
    assert "exactly 2,021 class ids" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.full(2021, 12))
    assert _run(tmp_path, tmp_path / "bad.npy", "--root", str(tmp_path), "--cifar10-1-version", "v4",
                "--trust-local")[0] == 1
    assert "out of range" in capsys.readouterr().err


def test_cifar10_1_metrics_never_import_torch(root, tmp_path):
    np.save(tmp_path / "p.npy", load_reference().cifar10_1["v6"]["nas"])
    code = (
        "import sys\n"
        "from cifarb.cli import main\n"
        f"rc = main(['metrics', {str(tmp_path / 'p.npy')!r}, '--dataset', 'cifar10.1', '--root', {str(root)!r}])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
