"""`cifarb compare`: pairing by test index, checks on the inputs, CIs of differences and the verdict."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cifarb.cli import main
from cifarb.errors import CifarbError
from cifarb.report.compare import compare_runs, verdict
from cifarb.seeds import derive_seed

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures_runs"
STD0 = FIXTURES / "cifar10-fastnet-standard-s0"
MIX0 = FIXTURES / "cifar10-fastnet-mixup-s0"
GOLDEN = REPO / "tests" / "golden" / "compare_standard_vs_mixup.txt"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_compare_golden_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "c.json"
    rel = [str(p.relative_to(REPO)) for p in (STD0, MIX0)]
    assert main(["compare", *rel, "--bootstrap", "500", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    if os.environ.get("CIFARB_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    data = json.loads(out.read_text())
    assert data["n_images"] == 400 and data["dataset"] == "cifar10-b"
    assert set(data["metrics"]) >= {"accuracy", "macro_std", "macro_std_excess", "worst_cell_accuracy"}


def test_point_estimates_agree_with_each_runs_own_result() -> None:
    # the noise floor behind macro_std_excess is simulated: compare with the seed the runs' own
    # evaluations used (both have run seed 0, so their CIs were seeded by (0, "eval-ci"))
    c = compare_runs(STD0, MIX0, bootstrap=200, seed=derive_seed(0, "eval-ci"))
    for run, side in ((STD0, "a"), (MIX0, "b")):
        res = json.loads((run / "eval" / "cifar10-b.json").read_text())
        for key in ("accuracy", "macro_std", "macro_std_null", "worst_cell_accuracy"):
            if key in c.metrics:
                assert c.metrics[key][side] == pytest.approx(res[key], abs=1e-12)
        assert c.metrics["macro_std_excess"][side] == pytest.approx(res["macro_std_excess"], abs=1e-12)
    m = c.metrics["macro_std"]
    assert m["diff"] == pytest.approx(m["a"] - m["b"])
    assert m["ci95"][0] <= m["ci95"][1]


def test_permutations_give_each_runs_own_p_subgroup_effect(tmp_path: Path, capsys) -> None:
    # the same test as the runs' own evaluation (seed derive_seed(0, "eval-ci"), 999 permutations, min
    # cell size 1): the same p
    seed = derive_seed(0, "eval-ci")
    c = compare_runs(STD0, MIX0, bootstrap=50, seed=seed)
    for run, side in ((STD0, "a"), (MIX0, "b")):
        res = json.loads((run / "eval" / "cifar10-b.json").read_text())
        assert res["settings"]["permutations"] == 999 and res["settings"]["seed"] == seed
        assert c.p_subgroup_effect[side] == [pytest.approx(res["p_subgroup_effect"], abs=1e-12)]
    assert c.to_dict()["p_subgroup_effect"]["a"] == c.p_subgroup_effect["a"][0]
    assert compare_runs(STD0, MIX0, bootstrap=50, permutations=0).p_subgroup_effect is None
    assert compare_runs(STD0, MIX0, bootstrap=0).p_subgroup_effect is None  # computed with the CIs, as eval
    few = compare_runs(STD0, MIX0, bootstrap=50, permutations=19).p_subgroup_effect
    assert few["permutations"] == 19 and all(p in {i / 20 for i in range(1, 21)} for p in few["a"] + few["b"])
    # several seeds: one p per run, in pair order, printed per seed
    a = [str(FIXTURES / f"cifar10-fastnet-mixup-s{s}") for s in (1, 0)]
    b = [str(FIXTURES / f"cifar10-fastnet-standard-s{s}") for s in (0, 1)]
    out = tmp_path / "c.json"
    assert main(["compare", "--bootstrap", "50", "--permutations", "99", "--json", str(out), *a, "--", *b]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())["p_subgroup_effect"]
    assert data["permutations"] == 99 and len(data["a"]) == len(data["b"]) == 2
    from cifarb.metrics.core import subgroup_effect_p

    for seed, p in zip((0, 1), data["a"], strict=True):
        frame = pd.read_parquet(FIXTURES / f"cifar10-fastnet-mixup-s{seed}" / "predictions" / "cifar10-b.parquet")
        sub = {n: i for i, n in enumerate(json.loads((STD0 / "eval" / "cifar10-b.json").read_text())
                                          ["settings"]["subgroup_names"])}
        g = frame["subgroup"].map(sub).to_numpy() if frame["subgroup"].dtype == object else frame["subgroup"]
        assert p == subgroup_effect_p(frame["label"], frame["prediction"], g, n_classes=10, n_subgroups=8,
                                      permutations=99)
    assert "99 within-class permutations): A seed 0 " in text and "; B seed 0 " in text
    assert main(["compare", "--permutations", "-1", *a, "--", *b]) == 2


def test_row_order_does_not_matter_and_self_comparison_is_zero(tmp_path: Path) -> None:
    b = _copy(MIX0, tmp_path / "b")
    frame = pd.read_parquet(b / "predictions" / "cifar10-b.parquet")
    frame.sample(frac=1.0, random_state=0).to_parquet(b / "predictions" / "cifar10-b.parquet", index=False)
    assert compare_runs(STD0, b, bootstrap=300).metrics == compare_runs(STD0, MIX0, bootstrap=300).metrics
    same = compare_runs(MIX0, b, bootstrap=300)
    for m in same.metrics.values():
        if m["diff"] is not None:
            assert m["diff"] == 0 and m["ci95"] == [0.0, 0.0]
    assert same.verdict.startswith("No detectable difference")


def test_verdict_says_fairer_only_when_the_ci_excludes_zero(tmp_path: Path) -> None:
    # B fails every image of the subgroups black, red and other; A predicts everything right
    a, b = _copy(STD0, tmp_path / "a"), _copy(STD0, tmp_path / "b")
    fa = pd.read_parquet(a / "predictions" / "cifar10-b.parquet")
    fa["prediction"] = fa["label"]
    fa.to_parquet(a / "predictions" / "cifar10-b.parquet", index=False)
    fb = fa.copy()
    hit = fb["subgroup"].isin([4, 6, 7]).to_numpy()
    fb.loc[hit, "prediction"] = (fb.loc[hit, "label"] + 1) % 10
    fb.to_parquet(b / "predictions" / "cifar10-b.parquet", index=False)
    ab, ba = compare_runs(a, b, bootstrap=300), compare_runs(b, a, bootstrap=300)
    assert ab.verdict.startswith("A is fairer than B") and ab.metrics["macro_std"]["ci95"][1] < 0
    assert ba.verdict.startswith("B is fairer than A")
    assert ab.accuracy_verdict.startswith("A is more accurate")
    assert verdict({"diff": -0.01, "ci95": [-0.02, 0.001]}, "MacroStd", 10, 10).startswith("No detectable")
    assert "--bootstrap 0" in verdict({"diff": -0.01, "ci95": None}, "MacroStd", 10, 0)


def test_different_images_or_labels_are_refused(tmp_path: Path, capsys) -> None:
    b = _copy(MIX0, tmp_path / "b")
    frame = pd.read_parquet(b / "predictions" / "cifar10-b.parquet")
    frame.iloc[:-1].to_parquet(b / "predictions" / "cifar10-b.parquet", index=False)
    assert main(["compare", str(STD0), str(b)]) == 1
    assert "cover different test images (A: 400, B: 399, shared: 399)" in capsys.readouterr().err
    frame["label"] = np.roll(frame["label"].to_numpy(), 1)
    frame.to_parquet(b / "predictions" / "cifar10-b.parquet", index=False)
    assert main(["compare", str(STD0), str(b)]) == 1
    assert "disagree on the true labels" in capsys.readouterr().err
    (b / "predictions" / "cifar10-b.parquet").write_bytes(b"PAR1 truncated")
    assert main(["compare", str(STD0), str(b)]) == 1
    assert "unreadable" in capsys.readouterr().err


def test_corruption_pairs_and_cifar10_1(capsys) -> None:
    assert main(["compare", str(STD0), str(MIX0), "--dataset", "cifar10-c"]) == 2
    err = capsys.readouterr().err
    assert "--corruption NAME --severity S" in err and "fog, gaussian_noise" in err
    c = compare_runs(STD0, MIX0, "cifar10-c", corruption="fog", severity=3, bootstrap=200)
    assert c.dataset == "cifar10-c-local" and c.selection == "corruption=fog severity=3"
    pair_a = json.loads((STD0 / "eval" / "cifar10-c-local.json").read_text())["corruptions"]["fog"]["3"]
    assert c.metrics["macro_std"]["a"] == pytest.approx(pair_a["macro_std"])
    with pytest.raises(CifarbError, match="no predictions for corruption fog severity 2"):
        compare_runs(STD0, MIX0, "cifar10-c", corruption="fog", severity=2)
    c101 = compare_runs(STD0, MIX0, "cifar10.1", bootstrap=200)
    assert list(c101.metrics) == ["accuracy"] and "no subgroups" in c101.verdict


def test_missing_predictions_and_broken_runs(tmp_path: Path, capsys) -> None:
    aug1 = FIXTURES / "cifar10-fastnet-augmix-s1"  # has no CIFAR-10.1 evaluation
    assert main(["compare", str(STD0), str(aug1), "--dataset", "cifar10.1"]) == 1
    err = capsys.readouterr().err
    assert "no predictions/cifar10.1.parquet in" in err and "cifarb eval --model RUNDIR --dataset cifar10.1" in err
    assert main(["compare", str(STD0), str(FIXTURES / "broken-truncated-result")]) == 1
    assert "cannot compare" in capsys.readouterr().err
