"""`cifarb reference`: the JSON contract, formats, sorting/filters, clear errors, torch-free, and the
must-show check of the bundled table against a plain loop over the original JSON files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _reference import plain_macro_std
from cifarb.cli import main
from cifarb.data.cifar_b import load_cifar_b
from cifarb.reference import load_reference
from cifarb.reference.score import score

REPO = Path(__file__).resolve().parents[1]
SHARED_REPO = REPO.parent / "shared" / "cifar10.1-repo"
FAST = ["--bootstrap", "0", "--analysis-bootstrap", "50"]
MODEL_KEYS = {"name", "accuracy", "macro_std", "macro_std_null", "macro_std_excess", "cifar10_1_v4_accuracy",
              "cifar10_1_v6_accuracy", "added", "rank_accuracy"}


@pytest.fixture(scope="module")
def table() -> dict:
    return score(bootstrap=0, analysis_bootstrap=50)


@pytest.fixture
def shared_repo() -> Path:
    if not (SHARED_REPO / "model_predictions" / "original_predictions").is_dir():
        pytest.skip(f"CIFAR-10.1 model predictions not found at {SHARED_REPO} (../shared is absent)")
    return SHARED_REPO


def test_bundled_table_matches_a_plain_loop_over_the_json_files(shared_repo, table):
    b = load_cifar_b("cifar10")
    labels, subgroups = b.labels.tolist(), b.subgroups.tolist()
    rows = {r["name"]: r for r in table["models"]}
    for name in ("resnet_basic_56", "densenet_BC_100_12", "shake_shake_26_2x64d_SSI", "alexnet_tf_ben"):
        path = shared_repo / "model_predictions" / "original_predictions" / f"{name}_predictions.json"
        preds = json.loads(path.read_text())
        acc = sum(p == y for p, y in zip(preds, labels, strict=True)) / len(labels)
        assert abs(rows[name]["accuracy"] - acc) <= 1e-12
        assert abs(rows[name]["macro_std"] - plain_macro_std(labels, preds, subgroups)) <= 1e-12


def test_json_contract(tmp_path, table):
    out = tmp_path / "ref.json"
    assert main(["reference", *FAST, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"dataset", "n_images", "indices", "models", "analysis"} <= set(doc)
    assert (doc["dataset"], doc["n_images"], doc["indices"]) == ("cifar10-b", 10_000, "all")
    assert len(doc["models"]) == 30
    for row in doc["models"]:
        assert MODEL_KEYS <= set(row)
        assert row["added"] is False
        assert 0 < row["cifar10_1_v6_accuracy"] < row["accuracy"] < 1
    ranked = sorted(doc["models"], key=lambda r: r["rank_accuracy"])
    assert ranked[0]["rank_accuracy"] == 1
    assert [r["accuracy"] for r in ranked] == sorted((r["accuracy"] for r in doc["models"]), reverse=True)
    for name, corr in doc["analysis"].items():
        assert set(corr) == {"r", "ci95", "n"}, name
        assert corr["ci95"] is None or corr["ci95"][0] <= corr["ci95"][1]
    assert "partial_pearson__macro_std__cifar10_1_v6_accuracy__given__accuracy" in doc["analysis"]
    ref = load_reference()
    row = next(r for r in doc["models"] if r["name"] == "wrn_28_10")
    assert row["cifar10_1_v6_accuracy"] == ref.cifar10_1_accuracy["v6"]["wrn_28_10"].accuracy


def test_text_csv_md_html_and_sorting(tmp_path, capsys, table):
    assert main(["reference", *FAST, "--sort", "macro_std", "--models", "wrn_28_10,resnet_basic_56,nas",
                 "--csv", str(tmp_path / "t.csv"), "--html", str(tmp_path / "t.html")]) == 0
    out = capsys.readouterr().out
    lines = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in
             ("wrn_28_10", "resnet_basic_56", "nas")]
    assert lines == ["wrn_28_10", "nas", "resnet_basic_56"]  # MacroStd 1.90 < 1.93 < 2.75 %
    import pandas as pd

    frame = pd.read_csv(tmp_path / "t.csv")
    assert len(frame) == 3 and {"subgroup_green", "discrepancy_ci_lo", "cifar10_1_v4_accuracy"} <= set(frame.columns)
    page = (tmp_path / "t.html").read_text()
    assert "data:image/png;base64," in page and "<script" not in page and "http://" not in page
    from cifarb.reference.render import sorted_rows

    order = [r["name"] for r in sorted_rows(table, "discrepancy")]
    assert order == [r["name"] for r in sorted(table["models"], key=lambda r: r["discrepancy"])]
    assert [r["name"] for r in sorted_rows(table, "discrepancy", reverse=True)] == order[::-1]
    assert main(["reference", *FAST, "--format", "md", "--models", "nas,darc", "--sort", "name"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| model |") and len(md) == 4 and "`darc`" in md[2] and "`nas`" in md[3]


def test_recomputes_cifar10_1_accuracy_from_labels_under_root(shared_repo, tmp_path, table):
    (tmp_path / "CIFAR-10.1").mkdir()
    shutil.copy(shared_repo / "cifar10.1_v4_labels.npy", tmp_path / "CIFAR-10.1")
    out = tmp_path / "r.json"
    assert main(["reference", *FAST, "--root", str(tmp_path), "--cifar10-1-version", "v4", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["cifar10_1"] == {"v4": "recomputed from labels", "v6": "shipped"}
    assert doc["settings"]["cifar10_1_labels"]["verified"] is True
    shipped = {r["name"]: r for r in table["models"]}
    for row in doc["models"]:
        assert row["cifar10_1_v4_accuracy"] == pytest.approx(shipped[row["name"]]["cifar10_1_v4_accuracy"], abs=1e-15)


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    assert main(["reference", *FAST, "--models", "resnet56"]) == 1
    assert "unknown reference model 'resnet56'" in capsys.readouterr().err
    np.save(tmp_path / "short.npy", np.zeros(5, dtype=np.int64))
    assert main(["reference", *FAST, "--add", f"x={tmp_path / 'short.npy'}"]) == 1
    assert "exactly 10,000" in capsys.readouterr().err
    other = {"dataset": "cifar100-b", "accuracy": 0.5, "n_images": 10_000, "n_official": 10_000}
    (tmp_path / "r100.json").write_text(json.dumps(other))
    assert main(["reference", *FAST, "--add", f"x={tmp_path / 'r100.json'}"]) == 1
    assert "is a result for 'cifar100-b'" in capsys.readouterr().err
    assert main(["reference", *FAST, "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cifar10.1_v6_labels.npy is missing" in err and "not bundled" in err and "Traceback" not in err
    assert main(["reference", "--add", "nofile"]) == 2
    (tmp_path / "CIFAR-10.1").mkdir()
    np.save(tmp_path / "CIFAR-10.1" / "cifar10.1_v6_labels.npy", np.zeros(2000, dtype=np.int32))
    assert main(["reference", *FAST, "--root", str(tmp_path)]) == 1
    assert "--trust-local" in capsys.readouterr().err


def test_sort_choices_match_the_renderer():
    from cifarb.commands.reference import SORT_CHOICES
    from cifarb.reference.render import SORT_KEYS

    assert SORT_CHOICES == tuple(SORT_KEYS)


def test_list_shows_cards(capsys):
    assert main(["reference", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 30 and any(line.startswith("wrn_28_10 ") and "depth 28" in line for line in out)


def test_reference_command_never_imports_torch(tmp_path):
    code = (
        "import sys\n"
        "from cifarb.cli import main\n"
        f"rc = main(['reference', '--bootstrap', '0', '--analysis-bootstrap', '20', '--analysis', "
        f"'--html', {str(tmp_path / 'r.html')!r}])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.html").exists()


def test_docs_carry_the_table_for_all_30_models_and_the_figure(table):
    doc = (REPO / "docs" / "reference-models.md").read_text(encoding="utf-8")
    block = doc.split("<!-- reference:table:start -->")[1].split("<!-- reference:table:end -->")[0]
    rows = {r["name"]: r for r in table["models"]}
    listed = [line.split("`")[1] for line in block.splitlines() if line.startswith("| `")]
    assert sorted(listed) == sorted(rows)
    for line in block.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[2] == f"{100 * rows[cells[0].strip('`')]['accuracy']:.2f}"  # the committed numbers hold
            assert cells[3] == f"{100 * rows[cells[0].strip('`')]['macro_std']:.2f}"
    assert "partial_pearson__macro_std__cifar10_1_v6_accuracy__given__accuracy" in doc
    assert (REPO / "docs" / "assets" / "reference-models.png").read_bytes().startswith(b"\x89PNG")
