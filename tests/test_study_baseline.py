"""Study baseline: `[study] baseline`, recorded in <out>/_study.json, and the report's method-vs-baseline table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cifarb.errors import CifarbError
from cifarb.report.build import build_report, render_text
from cifarb.study.config import parse_config

FIXTURES = Path(__file__).resolve().parent / "fixtures_runs"
BASE = {"datasets": ["cifar10"], "archs": ["fastnet"], "augs": ["standard", "mixup"], "seeds": [0]}


def test_baseline_defaults_to_the_first_aug_and_must_be_one_of_them() -> None:
    assert parse_config({"study": dict(BASE)}).baseline == "standard"
    cfg = parse_config({"study": {**BASE, "baseline": "mixup"}})
    assert cfg.baseline == "mixup" and cfg.describe()["baseline"] == "mixup"
    with pytest.raises(CifarbError, match=r"\[study\].baseline must be one of the augs"):
        parse_config({"study": {**BASE, "baseline": "cutout"}})


def test_report_compares_every_method_with_the_study_baseline(tmp_path: Path) -> None:
    study = tmp_path / "study"
    for p in FIXTURES.glob("cifar10-fastnet-*"):
        shutil.copytree(p, study / p.name)
    (study / "_logs").mkdir()  # a study's own log folder is not a run
    (study / "_logs" / "x.log").write_text("log")
    (study / "_study.json").write_text(json.dumps({"name": "t", "baseline": "standard"}))
    report = build_report([study], bootstrap=0, compare_bootstrap=200)
    assert report.baseline == "standard" and report.baseline_source.endswith("_study.json")
    assert not report.loaded.problems
    assert [(bc.method, bc.baseline) for bc in report.vs_baseline] == [("augmix", "standard"), ("mixup", "standard")]
    for bc in report.vs_baseline:
        c = bc.comparison
        assert c is not None and c.seeds == ["seed 0", "seed 1"]
        assert c.metrics["accuracy"]["per_seed"] and c.metrics["accuracy"]["ci95"] is not None
    text = render_text(report)
    assert "## Each method vs the baseline (standard)" in text and "| mixup | standard | 2 |" in text
    # --baseline overrides the study's; an unknown one names the methods
    assert build_report([study], bootstrap=0, baseline="mixup", compare_bootstrap=50).baseline == "mixup"
    with pytest.raises(CifarbError, match="is none of the methods reported"):
        build_report([study], bootstrap=0, baseline="cutout", compare_bootstrap=50)


def test_report_tables_show_the_debiased_macrostd_and_the_p_value_or_a_dash(tmp_path: Path) -> None:
    from cifarb.report.tables import summary_table

    run = tmp_path / "cifar10-fastnet-standard-s0"
    shutil.copytree(FIXTURES / run.name, run)
    res = json.loads((run / "eval" / "cifar10-b.json").read_text())
    res["macro_std_debiased"], res["p_subgroup_effect"] = 0.05, 0.0123
    res["ci95"]["macro_std_debiased"] = [0.03, 0.07]
    (run / "eval" / "cifar10-b.json").write_text(json.dumps(res))
    old = tmp_path / "cifar10-fastnet-mixup-s0"  # as written before the keys existed
    shutil.copytree(FIXTURES / old.name, old)
    res = json.loads((old / "eval" / "cifar10-b.json").read_text())
    for key in ("macro_std_debiased", "p_subgroup_effect"):
        res.pop(key, None)
        res["ci95"].pop(key, None)
    (old / "eval" / "cifar10-b.json").write_text(json.dumps(res))
    report = build_report([run, old], bootstrap=0, compare_bootstrap=0, schema=False)
    table = summary_table(report.groups)
    col = {h: i for i, h in enumerate(table.header)}
    new_row, old_row = table.rows
    assert (new_row[col["debiased %"]], new_row[col["debiased 95% CI"]], new_row[col["p(effect)"]]) == \
        ("5.00", "[3.00, 7.00]", "0.012")
    assert (old_row[col["debiased %"]], old_row[col["debiased 95% CI"]], old_row[col["p(effect)"]]) == ("—",) * 3
