"""`--dataset cifar100-super`: CIFAR-100 superclasses as classes, their fine classes as subgroups."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cifarb.cli import main
from cifarb.data.cifar_b import load_cifar_b
from cifarb.data.superclasses import load_superclasses
from cifarb.metrics import validate_result

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="module")
def sup():
    return load_superclasses()


def test_totals_500_per_superclass_100_per_fine_class(sup):
    assert np.array_equal(np.bincount(sup.labels, minlength=20), np.full(20, 500))
    assert np.array_equal(np.bincount(sup.subgroups, minlength=100), np.full(100, 100))
    assert len(sup.class_names) == 20 and len(sup.subgroup_names) == 100
    # every superclass holds exactly 5 fine classes, and the mapping agrees with the bundled coarse labels
    assert np.array_equal(np.bincount(sup.fine_to_coarse, minlength=20), np.full(20, 5))
    c100 = load_cifar_b("cifar100")
    assert np.array_equal(sup.labels, c100.coarse_labels)
    assert sup.subgroup_names == c100.class_names and sup.class_names == c100.coarse_class_names
    assert sup.class_names[sup.to_coarse([sup.subgroup_names.index("maple_tree")])[0]] == "trees"


def test_asset_is_reproduced_by_the_committed_script(tmp_path):
    if not (SHARED / "data" / "cifar-100-meta").exists():
        pytest.skip(f"CIFAR-100 meta not found under {SHARED} (../shared is absent)")
    subprocess.run([sys.executable, str(REPO / "scripts/make_cifar100_super.py"), "--shared", str(SHARED),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    bundled = REPO / "src/cifarb/data/assets/cifar100_super.json"
    assert (tmp_path / "cifar100_super.json").read_bytes() == bundled.read_bytes()


def plain_loop(true_coarse, pred_coarse, fine):
    """MacroStd and per-fine-class accuracy with explicit loops over superclasses and their fine classes."""
    stds, fine_acc = [], {}
    for c in range(20):
        parts = []
        for f in range(100):
            sel = [i for i in range(len(fine)) if true_coarse[i] == c and fine[i] == f]
            if sel:
                acc = sum(pred_coarse[i] == c for i in sel) / len(sel)
                parts.append((len(sel), acc))
                fine_acc[f] = acc
        n_c = sum(n for n, _ in parts)
        m = sum(n * a for n, a in parts) / n_c
        stds.append(math.sqrt(sum(n / n_c * (a - m) ** 2 for n, a in parts)))
    return sum(stds) / 20, fine_acc


def test_metrics_match_a_plain_loop_fine_and_coarse(tmp_path, sup):
    rng = np.random.default_rng(5)
    # fine predictions: right with a probability that depends on the fine class, else a random fine class
    p_right = rng.uniform(0.3, 0.95, 100)[sup.subgroups]
    fine_pred = np.where(rng.random(10_000) < p_right, sup.subgroups, rng.integers(0, 100, 10_000))
    np.save(tmp_path / "fine.npy", fine_pred)
    out = tmp_path / "r.json"
    assert main(["metrics", str(tmp_path / "fine.npy"), "--dataset", "cifar100-super", "--json", str(out),
                 "--bootstrap", "30"]) == 0
    result = json.loads(out.read_text())
    validate_result(result)
    assert result["dataset"] == "cifar100-super" and result["n_images"] == 10_000
    assert result["provenance"]["predictions"] == "fine"
    assert len(result["cells"]) == 100 and {c["n"] for c in result["cells"]} == {100}
    coarse_pred = sup.fine_to_coarse[fine_pred]
    ms, fine_acc = plain_loop(sup.labels.tolist(), coarse_pred.tolist(), sup.subgroups.tolist())
    assert result["macro_std"] == pytest.approx(ms)
    assert result["accuracy"] == pytest.approx(float(np.mean(coarse_pred == sup.labels)))
    assert result["subgroup_accuracy"] == pytest.approx({sup.subgroup_names[f]: a for f, a in fine_acc.items()})
    # the same predictions given as coarse ids (a subset, as names) score the same on those images
    idx = np.arange(0, 10_000, 3)
    pd.DataFrame({"index": idx, "prediction": np.array(sup.class_names)[coarse_pred[idx]]}).to_csv(
        tmp_path / "coarse.csv", index=False)
    out2 = tmp_path / "r2.json"
    assert main(["metrics", str(tmp_path / "coarse.csv"), "--dataset", "cifar100-super", "--predictions", "coarse",
                 "--json", str(out2), "--bootstrap", "0"]) == 0
    sub = json.loads(out2.read_text())
    validate_result(sub)
    assert sub["n_images"] == idx.size and sub["provenance"]["predictions"] == "coarse"
    assert sub["accuracy"] == pytest.approx(float(np.mean(coarse_pred[idx] == sup.labels[idx])))


def test_coarse_ids_out_of_range_say_which_flag(tmp_path, capsys):
    np.save(tmp_path / "p.npy", np.full(10_000, 50))
    assert main(["metrics", str(tmp_path / "p.npy"), "--dataset", "cifar100-super", "--predictions", "coarse"]) == 1
    assert "out of range" in capsys.readouterr().err
