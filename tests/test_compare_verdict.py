"""`cifarb compare` verdicts on constructed cases: noise floor, accuracy beside it, near chance, seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cifarb.cli import main
from cifarb.data.cifar_b import load_cifar_b
from cifarb.metrics import compute_metrics, paired_bootstrap
from cifarb.metrics.multiseed import multiseed_paired_bootstrap
from cifarb.report.compare import chance_threshold, compare

BUNDLE = load_cifar_b("cifar10")
IDX = np.arange(3000)  # a subset of the test set, as a .csv may give
Y, G = BUNDLE.labels[IDX], BUNDLE.subgroups[IDX]


def _preds(rng: np.random.Generator, acc_by_subgroup: dict[int, float] | float) -> np.ndarray:
    """Predictions right with a given probability per subgroup (wrong ones spread over the other classes)."""
    p = np.array([acc_by_subgroup.get(int(g), acc_by_subgroup.get(-1, 0.0)) if isinstance(acc_by_subgroup, dict)
                  else acc_by_subgroup for g in G])
    right = rng.random(Y.size) < p
    wrong = (Y + rng.integers(1, 10, Y.size)) % 10
    return np.where(right, Y, wrong)


def _write(path: Path, pred: np.ndarray) -> Path:
    pd.DataFrame({"index": IDX, "prediction": pred}).to_csv(path, index=False)
    return path


def test_chance_threshold() -> None:
    assert chance_threshold(10) == pytest.approx(0.325)
    assert chance_threshold(100) == pytest.approx(0.01 + 0.25 * 0.99)


def test_near_chance_model_is_never_called_fairer(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    # A: 22 % everywhere (uniformly bad, so no subgroup effect); B: 24 % overall but very uneven
    a = _write(tmp_path / "a.csv", _preds(rng, 0.22))
    b = _write(tmp_path / "b.csv", _preds(rng, {0: 0.05, 2: 0.05, 5: 0.60, 1: 0.60, -1: 0.3}))
    c = compare([a], [b], "cifar10-b", bootstrap=300)
    ex = c.metrics["macro_std_excess"]
    assert ex["ci95"][1] < 0  # A's discrepancy really is lower...
    assert "fairer" not in c.verdict and c.verdict.startswith("No fairness verdict")  # ...but A is near chance
    assert any("A is near chance" in w for w in c.warnings) and any("B is near chance" in w for w in c.warnings)
    assert main(["compare", "--dataset", "cifar10-b", "--bootstrap", "200", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "near chance" in out and "is fairer" not in out
    assert "accuracy A - B" in out.split("\nverdict: ")[1].splitlines()[0]  # the accuracy difference beside it


def test_verdict_uses_the_excess_not_raw_macrostd_and_warns_on_disagreement(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    # A: uniform 70 %; B: 95 % on green/blue/brown, 60 % elsewhere: B is more accurate but less even
    a = _write(tmp_path / "a.csv", _preds(rng, 0.70))
    b = _write(tmp_path / "b.csv", _preds(rng, {0: 0.95, 2: 0.95, 5: 0.95, -1: 0.40}))
    c = compare([a], [b], "cifar10-b", bootstrap=300)
    assert c.primary == "macro_std_excess" or c.primary == "macro_std_debiased"
    assert c.verdict.startswith("A is fairer than B") and c.primary in c.verdict
    assert c.accuracy_verdict.startswith("B is more accurate")
    assert any("accuracy and discrepancy disagree" in w for w in c.warnings)
    # swapped sides: the same disagreement, seen from the other side
    d = compare([b], [a], "cifar10-b", bootstrap=300)
    assert d.verdict.startswith("B is fairer than A") and any("disagree" in w for w in d.warnings)
    e = compare([a], [a], "cifar10-b", bootstrap=100)
    assert e.verdict.startswith("No detectable difference") and not e.warnings


def _seed_runs(root: Path, name: str, seeds: list[int], acc: dict[int, float] | float, rng_seed: int) -> list[Path]:
    """Minimal run directories (manifest with the seed, eval result, predictions parquet)."""
    out = []
    for s in seeds:
        rng = np.random.default_rng([rng_seed, s])
        pred = _preds(rng, acc)
        res = compute_metrics(Y, pred, G, class_names=BUNDLE.class_names, subgroup_names=BUNDLE.subgroup_names,
                              bootstrap=0).to_dict()
        from cifarb.metrics import build_result

        result = build_result(res, dataset="cifar10-b", n_images=int(Y.size), n_official=10000, data_verified=True,
                              provenance={"model": name, "model_sha256": None, "data_sha256": {}})
        d = root / f"cifar10-fastnet-{name}-s{s}"
        (d / "eval").mkdir(parents=True)
        (d / "predictions").mkdir()
        (d / "manifest.json").write_text(json.dumps({"kind": "eval", "seed": s, "config": {
            "dataset": "cifar10", "arch": "fastnet", "aug": name, "seed": s}}))
        (d / "eval" / "cifar10-b.json").write_text(json.dumps(result))
        pd.DataFrame({"index": IDX, "label": Y, "prediction": pred, "subgroup": G}).to_parquet(
            d / "predictions" / "cifar10-b.parquet", index=False)
        out.append(d)
    return out


def test_multiseed_real_difference_and_none(tmp_path: Path, capsys) -> None:
    fair = _seed_runs(tmp_path, "fair", [0, 1, 2], 0.8, 10)
    unfair = _seed_runs(tmp_path, "unfair", [0, 1, 2], {0: 0.95, 2: 0.95, -1: 0.55}, 11)
    same = _seed_runs(tmp_path, "same", [0, 1, 2], 0.8, 12)
    c = compare(fair, list(reversed(unfair)), bootstrap=300)  # B given in another order: paired by seed
    assert c.pairing.startswith("paired by the seed") and c.seeds == ["seed 0", "seed 1", "seed 2"]
    assert [p.name[-2:] for p in c.b] == ["s0", "s1", "s2"]
    assert c.verdict.startswith("A is fairer than B") and "two-level bootstrap over 3 seed pairs" in c.verdict
    n = compare(fair, same, bootstrap=300)
    assert n.verdict.startswith("No detectable difference")
    lo, hi = n.metrics[n.primary]["ci95"]
    assert lo < 0 < hi
    # the CLI forms: A... -- B... and --a/--b globs
    assert main(["compare", "--bootstrap", "100", *map(str, fair), "--", *map(str, unfair)]) == 0
    text = capsys.readouterr().out
    assert "paired by the seed in each manifest" in text and "A is fairer than B" in text
    assert main(["compare", "--bootstrap", "100", "--a", str(tmp_path / "*-fair-s*"),
                 "--b", str(tmp_path / "*-unfair-s*")]) == 0
    assert "A is fairer than B" in capsys.readouterr().out
    assert main(["compare", str(fair[0]), "--", str(unfair[0]), "--bootstrap", "5"]) == 2
    assert "options come before the run lists" in capsys.readouterr().err
    assert main(["compare", *map(str, fair[:2]), "--", *map(str, unfair[1:])]) == 1
    assert "paired by the seed" in capsys.readouterr().err


def test_predictions_files_are_paired_by_position(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(3)
    a = [_write(tmp_path / f"a{i}.csv", _preds(rng, 0.8)) for i in range(2)]
    b = [_write(tmp_path / f"b{i}.csv", _preds(rng, 0.7)) for i in range(2)]
    assert main(["compare", "--dataset", "cifar10-b", "--bootstrap", "100", *map(str, a), "--", *map(str, b)]) == 0
    out = capsys.readouterr().out
    assert "paired by position (predictions files record no seed)" in out and "A is more accurate" in out
    assert main(["compare", str(a[0]), str(b[0])]) == 2
    assert "need --dataset" in capsys.readouterr().err


def test_multiseed_against_an_independent_computation() -> None:
    rng = np.random.default_rng(4)
    pairs = [(Y, G, _preds(rng, 0.8), _preds(rng, {0: 0.9, -1: 0.7})) for _ in range(3)]
    ms = multiseed_paired_bootstrap(pairs, same_images=True, class_names=BUNDLE.class_names,
                                    subgroup_names=BUNDLE.subgroup_names, bootstrap=200)
    per = []
    for y, g, pa, pb in pairs:
        ra = compute_metrics(y, pa, g, n_classes=10, n_subgroups=8, bootstrap=0)
        rb = compute_metrics(y, pb, g, n_classes=10, n_subgroups=8, bootstrap=0)
        per.append({k: getattr(ra, k) - getattr(rb, k) for k in ("accuracy", "macro_std", "macro_std_excess")})
    for k in ("accuracy", "macro_std", "macro_std_excess"):
        assert ms[k]["per_seed"] == pytest.approx([p[k] for p in per], abs=1e-12)
        assert ms[k]["diff"] == pytest.approx(np.mean([p[k] for p in per]), abs=1e-12)
        lo, hi = ms[k]["ci95"]
        assert lo <= ms[k]["diff"] <= hi
    # one seed pair: the same point estimates as the single-pair paired bootstrap, similar CI width
    one = multiseed_paired_bootstrap(pairs[:1], same_images=True, n_classes=10, n_subgroups=8, bootstrap=400)
    ref = paired_bootstrap(Y, pairs[0][2], pairs[0][3], G, n_classes=10, n_subgroups=8, bootstrap=400)
    for k in ("accuracy", "macro_std", "macro_std_excess"):
        assert one[k]["diff"] == pytest.approx(ref[k]["diff"], abs=1e-12)
        w1, w2 = np.diff(one[k]["ci95"])[0], np.diff(ref[k]["ci95"])[0]
        assert 0.75 < w1 / w2 < 1.33
    # identical A and B: every difference and every resampled difference is 0
    zero = multiseed_paired_bootstrap([(Y, G, p[2], p[2]) for p in pairs], same_images=True, n_classes=10,
                                      n_subgroups=8, bootstrap=50)
    assert zero["accuracy"]["ci95"] == [0.0, 0.0] and zero["macro_std"]["diff"] == 0.0
