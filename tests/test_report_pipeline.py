"""Report pipeline on the committed fixture run directories: golden outputs, loading rules, statistics."""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cifarb.cli import main
from cifarb.report.analysis import critical_rho, spearman_bootstrap
from cifarb.report.build import build_report, severity_series
from cifarb.report.load import Problem, load_run, load_runs

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures_runs"
GOLDEN = REPO / "tests" / "golden"
GOOD = sorted(p for p in FIXTURES.glob("cifar10-*") if p.is_dir())
UPDATE = os.environ.get("CIFARB_UPDATE_GOLDEN") == "1"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing; run with CIFARB_UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file (CIFARB_UPDATE_GOLDEN=1 to accept)"


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # relative paths in outputs keep the golden files portable


@pytest.mark.parametrize(("fmt", "golden"), [("md", "report_fixtures.md"), ("csv", "report_fixtures.csv"),
                                             ("latex", "report_fixtures.tex")])
def test_report_golden(fmt: str, golden: str, in_repo: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "tests/fixtures_runs", "--format", fmt]) == 0
    captured = capsys.readouterr()
    _golden(golden, captured.out)
    # every broken directory is named on stderr, whatever the format
    for name in ("broken-partial-training", "broken-truncated-result", "broken-accuracy-out-of-range",
                 "broken-not-a-run"):
        assert f"left out tests/fixtures_runs/{name}" in captured.err


def test_broken_runs_are_reported_with_their_reason_and_never_used() -> None:
    loaded = load_runs([FIXTURES])
    assert sorted(r.name for r in loaded.runs) == [p.name for p in GOOD]
    reasons = {p.path.name: p.reason for p in loaded.problems}
    assert "trained 2 of 3 epochs" in reasons["broken-partial-training"]
    assert "truncated JSON" in reasons["broken-truncated-result"]
    assert "accuracy = 1.7" in reasons["broken-accuracy-out-of-range"]
    assert "not a run directory" in reasons["broken-not-a-run"]
    # the broken copies carry the same (valid-looking) manifest as standard-s0: a leak would change n
    report = build_report([FIXTURES])
    assert [len(g.runs) for g in report.groups] == [2, 2, 2]


def test_strict_and_nothing_usable(in_repo: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "tests/fixtures_runs", "--strict"]) == 1
    assert "4 run directories left out" in capsys.readouterr().err
    assert main(["report", "tests/fixtures_runs/broken-truncated-result", "tests/nope"]) == 1
    err = capsys.readouterr().err
    assert "no usable run directory" in err and "does not exist" in err and "truncated" in err


def test_summary_matches_an_independent_computation() -> None:
    report = build_report([FIXTURES])
    for g in report.groups:
        raw = [json.loads((r.path / "eval" / "cifar10-b.json").read_text()) for r in g.runs]
        for key in ("accuracy", "macro_std", "macro_std_excess", "worst_cell_accuracy"):
            vals = [x[key] for x in raw]
            assert g.stats[key].mean == pytest.approx(float(np.mean(vals)), abs=1e-12)
            assert g.stats[key].sd == pytest.approx(float(np.std(vals, ddof=1)), abs=1e-12)
        lo = np.mean([x["ci95"]["macro_std"][0] for x in raw])
        assert g.stats["macro_std"].ci_lo == pytest.approx(lo)
        c = [json.loads((r.path / "eval" / "cifar10-c-local.json").read_text()) for r in g.runs]
        # the -C top level is the mean over pairs: recompute it from the pairs themselves
        for x in c:
            pairs = [m["accuracy"] for sev in x["corruptions"].values() for m in sev.values()]
            assert x["accuracy"] == pytest.approx(statistics.fmean(pairs))
        assert g.stats["c_accuracy"].mean == pytest.approx(np.mean([x["accuracy"] for x in c]))
    augmix = next(g for g in report.groups if g.aug == "augmix")
    assert augmix.stats["c101_accuracy"].n == 1 and augmix.stats["c101_accuracy"].sd is None


def test_severity_curves_average_the_by_severity_blocks() -> None:
    report = build_report([FIXTURES])
    g = report.groups[0]
    s = severity_series(g)
    assert s is not None and s["severities"] == [0, 1, 3]
    res = [json.loads((r.path / "eval" / "cifar10-c-local.json").read_text()) for r in g.runs]
    blue3 = np.mean([x["corruptions_mean"]["by_severity"]["3"]["subgroup_accuracy"]["blue"] for x in res])
    assert s["subgroup_accuracy"]["blue"][2] == pytest.approx(blue3)
    # by_severity itself is the mean over corruptions at that severity
    x = res[0]
    per_c = [x["corruptions"][c]["3"]["macro_std"] for c in x["corruptions"]]
    assert x["corruptions_mean"]["by_severity"]["3"]["macro_std"] == pytest.approx(np.mean(per_c))
    clean = np.mean([json.loads((r.path / "eval" / "cifar10-b.json").read_text())["accuracy"] for r in g.runs])
    assert s["accuracy"][0] == pytest.approx(clean)


def _spearman_loop(x: np.ndarray, y: np.ndarray) -> float:
    def ranks(a: np.ndarray) -> np.ndarray:
        order = np.argsort(a, kind="stable")
        r = np.empty(len(a))
        i = 0
        while i < len(a):  # ties share the average of their positions
            j = i
            while j + 1 < len(a) and a[order[j + 1]] == a[order[i]]:
                j += 1
            r[order[i:j + 1]] = (i + j) / 2 + 1
            i = j + 1
        return r

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float("nan") if den == 0 else float((rx * ry).sum() / den)


def test_spearman_bootstrap_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=9)
    y = np.round(x + rng.normal(size=9), 1)
    y[2] = y[5]  # a tie
    rho, ci, valid = spearman_bootstrap(x, y, bootstrap=400, seed=11)
    assert rho == pytest.approx(_spearman_loop(x, y))
    # same resamples, one at a time
    idx = np.random.default_rng(11).integers(0, 9, size=(400, 9))
    loop = np.array([_spearman_loop(x[i], y[i]) for i in idx])
    loop = loop[~np.isnan(loop)]
    assert valid == loop.size
    assert ci == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])))
    assert ci[0] <= rho <= ci[1]


def test_spearman_edge_cases_and_critical_value() -> None:
    assert spearman_bootstrap([1, 2], [3, 4]) == (None, None, 0)
    assert spearman_bootstrap([1, 1, 1, 1], [1, 2, 3, 4]) == (None, None, 0)
    rho, ci, _ = spearman_bootstrap([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], bootstrap=200)
    assert rho == pytest.approx(1.0) and ci == pytest.approx((1.0, 1.0))
    for n in (5, 10, 30):
        rc = critical_rho(n)
        t = rc * math.sqrt((n - 2) / (1 - rc * rc))
        assert 2 * stats.t.sf(t, n - 2) == pytest.approx(0.05, rel=1e-6)
    assert critical_rho(10) == pytest.approx(0.632, abs=0.01)
    assert critical_rho(3) is None


def test_study_folder_expansion_and_local_vs_official_c(tmp_path: Path) -> None:
    run = tmp_path / "study" / "cifar10-fastnet-standard-s0"
    shutil.copytree(FIXTURES / "cifar10-fastnet-standard-s0", run)
    (tmp_path / "study" / "_logs").mkdir()
    loaded = load_runs([tmp_path / "study"])
    assert [r.name for r in loaded.runs] == [run.name] and not loaded.problems
    assert loaded.runs[0].eval_names["c"] == "cifar10-c-local"
    # an official -C result wins over the generated one, with a note
    official = json.loads((run / "eval" / "cifar10-c-local.json").read_text())
    official["dataset"] = "cifar10-c"
    official["accuracy"] = 0.5
    (run / "eval" / "cifar10-c.json").write_text(json.dumps(official))
    r = load_run(run)
    assert not isinstance(r, Problem)
    assert r.eval_names["c"] == "cifar10-c" and r.results["c"]["accuracy"] == 0.5
    assert any("ignored eval/cifar10-c-local.json" in n for n in r.notes)


def test_result_stored_under_the_wrong_name_is_corrupt(tmp_path: Path) -> None:
    run = tmp_path / "r"
    shutil.copytree(FIXTURES / "cifar10-fastnet-mixup-s1", run)
    shutil.move(run / "eval" / "cifar10.1.json", run / "eval" / "cifar10-c.json")
    item = load_run(run)
    assert isinstance(item, Problem) and "stored as cifar10-c.json" in item.reason


def test_evaluation_only_run_directory_is_used(tmp_path: Path) -> None:
    run = tmp_path / "zoo-eval"
    (run / "eval").mkdir(parents=True)
    shutil.copy(FIXTURES / "cifar10-fastnet-mixup-s0" / "eval" / "cifar10-b.json", run / "eval")
    r = load_run(run)
    assert not isinstance(r, Problem)
    assert r.arch == "cifar10-fastnet-mixup-s0" and r.seed is None  # from provenance.model


def test_report_writes_out_file(tmp_path: Path, in_repo: None) -> None:
    out = tmp_path / "r.md"
    two = [FIXTURES / "cifar10-fastnet-standard-s0", FIXTURES / "cifar10-fastnet-mixup-s1"]
    assert main(["report", *map(str, two), "--out", str(out), "--format", "md"]) == 0
    text = out.read_text()
    assert text.startswith("# cifarb report: 2 runs in 2 methods")
    assert "only 2 run(s): no rank correlation" in text


def test_fixtures_are_what_the_script_and_the_real_metrics_code_write(tmp_path: Path) -> None:
    sys.path.insert(0, str(FIXTURES))
    try:
        import make_fixtures
    finally:
        sys.path.remove(str(FIXTURES))
    make_fixtures.make_all(tmp_path)
    from cifarb.metrics import validate_result

    committed = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".py"
                       and "__pycache__" not in p.parts)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert committed == fresh
    for rel in committed:
        a, b = FIXTURES / rel, tmp_path / rel
        if rel.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
        elif rel.suffix == ".json" and rel.parts[0].startswith("cifar10-"):
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            ja.pop("cifarb_version", None), jb.pop("cifarb_version", None)
            assert ja == jb, f"{rel} is stale: rerun python tests/fixtures_runs/make_fixtures.py"
            if rel.parts[1] == "eval":
                validate_result(json.loads(a.read_text()))
        elif rel.name != "cifar10-b.json":  # the truncated copy embeds a version string
            assert a.read_bytes() == b.read_bytes(), f"{rel} is stale"
