"""`cifarb metrics`: predictions formats, the table, --json, clear errors, and no torch import."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cifarb.cli import main
from cifarb.data.cifar_b import load_cifar_b
from cifarb.metrics import validate_result


@pytest.fixture(scope="module")
def c10():
    return load_cifar_b("cifar10")


@pytest.fixture(scope="module")
def preds10(c10):
    rng = np.random.default_rng(0)
    # accuracy that depends on the subgroup, so MacroStd is clearly above its floor
    p_right = np.array([0.95, 0.9, 0.93, 0.85, 0.7, 0.92, 0.6, 0.8])[c10.subgroups]
    return np.where(rng.random(10_000) < p_right, c10.labels, (c10.labels + 1) % 10)


def run_cli(*argv):
    return main(["metrics", *map(str, argv)])


def subgroup_accuracy_by_pandas(labels, preds, subgroups, names):
    df = pd.DataFrame({"right": labels == preds, "g": subgroups})
    return {names[g]: v for g, v in df.groupby("g")["right"].mean().items()}


def test_npy_table_and_json(tmp_path, c10, preds10, capsys):
    path = tmp_path / "preds.npy"
    np.save(path, preds10)
    out_json = tmp_path / "out" / "result.json"
    assert run_cli(path, "--dataset", "cifar10-b", "--json", out_json, "--bootstrap", "200") == 0
    text = capsys.readouterr().out
    assert "MacroStd" in text and "noise floor" in text and "worst cell" in text and "green" in text
    result = json.loads(out_json.read_text())
    validate_result(result)
    assert result["dataset"] == "cifar10-b" and result["n_images"] == 10_000 and result["n_official"] == 10_000
    assert result["data_verified"] is True
    assert result["provenance"]["model"] == str(path)
    assert result["provenance"]["model_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result["provenance"]["data_sha256"][c10.source_file] == c10.source_sha256
    # independent computation from the bundled labels
    assert result["accuracy"] == pytest.approx((preds10 == c10.labels).mean())
    assert result["subgroup_accuracy"] == pytest.approx(
        subgroup_accuracy_by_pandas(c10.labels, preds10, c10.subgroups, c10.subgroup_names))
    assert result["class_accuracy"]["cat"] == pytest.approx((preds10[c10.labels == 3] == 3).mean())
    assert len(result["cells"]) == 77  # FORMAT.md: 77 non-empty CIFAR10-B cells
    assert result["macro_std_excess"] > 0.02  # the subgroup effect is far above the noise floor
    assert result["settings"]["bootstrap"] == 200 and result["settings"]["subgroup_names"][0] == "green"
    assert result["settings"]["permutations"] == 999
    # a strong subgroup effect: D is far above 0, its interval excludes 0, the permutation test rejects
    lo, hi = result["ci95"]["macro_std_debiased"]
    assert 0 < lo <= result["macro_std_debiased"] <= hi and result["p_subgroup_effect"] == pytest.approx(1 / 1000)
    assert f"{100 * result['accuracy']:.2f}" in text


def test_npz_and_settings(tmp_path, preds10):
    path = tmp_path / "preds.npz"
    np.savez(path, predictions=preds10, logits=np.zeros(3))
    out = tmp_path / "r.json"
    assert run_cli(path, "--dataset", "cifar10-b", "--json", out, "--bootstrap", "0", "--min-cell-size", "20",
                   "--min-cell-size-worst", "50", "--seed", "4", "--subgroup-names",
                   "g0,g1,g2,g3,g4,g5,g6,g7") == 0
    result = json.loads(out.read_text())
    validate_result(result)
    assert result["ci95"] is None
    assert result["settings"] == {"bootstrap": 0, "seed": 4, "min_cell_size": 20, "min_cell_size_worst": 50,
                                  "subgroup_names": [f"g{i}" for i in range(8)], "macro_std_null_draws": 1000,
                                  "permutations": 999}
    assert result["p_subgroup_effect"] is None and result["macro_std_debiased"] is not None
    assert set(result["subgroup_accuracy"]) == {f"g{i}" for i in range(8)}
    big = [c["accuracy"] for c in result["cells"] if c["n"] >= 50]
    assert result["worst_cell_accuracy"] == pytest.approx(min(big))


def test_csv_subset_with_class_names_and_extra_columns(tmp_path, c10, preds10):
    idx = np.arange(3, 10_000, 9)
    names = np.array(c10.class_names)[preds10[idx]]
    names[::5] = [n.upper() for n in names[::5]]  # names are matched case-insensitively
    path = tmp_path / "subset.csv"
    pd.DataFrame({"model": "m", "index": idx, "prediction": names, "logit": 0.5}).to_csv(path, index=False)
    out = tmp_path / "r.json"
    assert run_cli(path, "--dataset", "cifar10-b", "--json", out, "--bootstrap", "100", "--permutations", "49") == 0
    result = json.loads(out.read_text())
    validate_result(result)
    assert result["settings"]["permutations"] == 49
    assert result["p_subgroup_effect"] * 50 == pytest.approx(round(result["p_subgroup_effect"] * 50))
    assert result["n_images"] == idx.size
    assert result["accuracy"] == pytest.approx((preds10[idx] == c10.labels[idx]).mean())
    assert sum(c["n"] for c in result["cells"]) == idx.size


def test_parquet_subset_with_ids_on_cifar100(tmp_path):
    c100 = load_cifar_b("cifar100")
    rng = np.random.default_rng(1)
    idx = rng.permutation(10_000)[:4000]  # any order
    preds = np.where(rng.random(idx.size) < 0.6, c100.labels[idx], rng.integers(0, 100, idx.size))
    path = tmp_path / "p.parquet"
    pd.DataFrame({"index": idx, "prediction": preds}).to_parquet(path)
    out = tmp_path / "r.json"
    assert run_cli(path, "--dataset", "cifar100-b", "--json", out, "--bootstrap", "50") == 0
    result = json.loads(out.read_text())
    validate_result(result)
    assert result["dataset"] == "cifar100-b" and result["n_images"] == 4000
    assert result["accuracy"] == pytest.approx((preds == c100.labels[idx]).mean())
    assert len(result["class_accuracy"]) == 100 and "aquarium_fish" in result["class_accuracy"]


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_FILES = [
    ("short.npy", lambda p: np.save(p, np.zeros(9999, dtype=int)), "exactly 10,000"),
    ("logits.npy", lambda p: np.save(p, np.zeros((10_000, 10))), "argmax"),
    ("floats.npy", lambda p: np.save(p, np.full(10_000, 0.5)), "not a class id"),
    ("range.npy", lambda p: np.save(p, np.full(10_000, 10)), "out of range"),
    ("neg.npy", lambda p: np.save(p, np.full(10_000, -1)), "out of range"),
    ("strings.npy", lambda p: np.save(p, np.array(["cat"] * 10_000)), "integer class ids"),
    ("damaged.npy", lambda p: p.write_bytes(b"\x93NUMPY garbage"), "cannot read"),
    ("nokey.npz", lambda p: np.savez(p, preds=np.zeros(10_000, dtype=int)), "no array named 'predictions'"),
    ("damaged.npz", lambda p: p.write_bytes(b"PK\x03\x04 not a zip"), "cannot read"),
    ("dup.csv", lambda p: write_csv(p, "index,prediction\n1,2\n1,3\n"), "appears 2 times"),
    ("idx.csv", lambda p: write_csv(p, "index,prediction\n10000,2\n"), "not an official test index"),
    ("negidx.csv", lambda p: write_csv(p, "index,prediction\n-1,2\n"), "not an official test index"),
    ("cols.csv", lambda p: write_csv(p, "idx,pred\n1,2\n"), "index,prediction"),
    ("name.csv", lambda p: write_csv(p, "index,prediction\n1,cat\n2,unicorn\n"), "'unicorn'"),
    ("cls.csv", lambda p: write_csv(p, "index,prediction\n1,12\n"), "out of range"),
    ("nan.csv", lambda p: write_csv(p, "index,prediction\n1,\n2,3\n"), "not a class id"),
    ("header.csv", lambda p: write_csv(p, "index,prediction\n"), "no rows"),
    ("empty.csv", lambda p: write_csv(p, ""), "cannot read"),
    ("damaged.parquet", lambda p: p.write_bytes(b"PAR1 nope"), "cannot read"),
    ("preds.txt", lambda p: write_csv(p, "1\n2\n"), "unknown predictions format"),
]


@pytest.mark.parametrize("name, make, match", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_predictions_give_one_clear_error(tmp_path, capsys, name, make, match):
    path = tmp_path / name
    make(path)
    out = tmp_path / "r.json"
    assert run_cli(path, "--dataset", "cifar10-b", "--json", out, "--bootstrap", "10") == 1
    err = capsys.readouterr().err
    assert err.startswith("cifarb: error: ") and match in err and "Traceback" not in err
    assert str(path) in err
    assert not out.exists() and list(tmp_path.iterdir()) == [path]  # nothing written


def test_missing_file_and_usage_errors(tmp_path, capsys, preds10):
    assert run_cli(tmp_path / "nope.npy", "--dataset", "cifar10-b") == 1
    assert "does not exist" in capsys.readouterr().err
    path = tmp_path / "p.npy"
    np.save(path, preds10)
    assert run_cli(path) == 2  # --dataset is required
    assert run_cli(path, "--dataset", "cifar10") == 2
    assert run_cli(path, "--dataset", "cifar10-b", "--bootstrap", "-1") == 2
    assert run_cli(path, "--dataset", "cifar10-b", "--seed", "-3") == 2
    assert run_cli(path, "--dataset", "cifar10-b", "--json", tmp_path) == 2
    assert "is a directory" in capsys.readouterr().err
    assert run_cli(path, "--dataset", "cifar10-b", "--subgroup-names", "a,b") == 1
    assert "8 non-empty" in capsys.readouterr().err


def test_help_explains_the_formats(capsys):
    assert run_cli("--help") == 0
    text = capsys.readouterr().out
    for needle in (".npy", ".npz", "index,prediction", "--bootstrap", "--min-cell-size", "--json"):
        assert needle in text


def test_metrics_command_never_imports_torch(tmp_path, preds10):
    path = tmp_path / "p.npy"
    np.save(path, preds10)
    code = (
        "import sys\n"
        "from cifarb.cli import main\n"
        f"rc = main(['metrics', {str(path)!r}, '--dataset', 'cifar10-b', '--bootstrap', '20', "
        f"'--json', {str(tmp_path / 'r.json')!r}])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.json").exists()
