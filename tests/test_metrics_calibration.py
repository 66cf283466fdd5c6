"""A fast run of bench/calibration.py: known-truth simulation that fails when interval coverage regresses.

The full bench (docs/bench/calibration.md) scores 300 test sets per scenario; this runs 40 on the
demo's 1,017-image composition (the hardest: most cells tiny) in two scenarios, with a loose bound:
every interval must cover its truth in at least 80 % of sets (the full bench measures >= 92 %), the
permutation test must not reject in more than 20 % of null sets, and D must be closer to the truth
than the plug-in MacroStd.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PREDICTIONS = ROOT.parent / "shared" / "cifar10.1-repo" / "model_predictions" / "original_predictions"


@pytest.fixture(scope="module")
def cal():
    if not (PREDICTIONS / "resnet_basic_56_predictions.json").exists():
        pytest.skip(f"needs the CIFAR-10.1 repository's model predictions in {PREDICTIONS}")
    return runpy.run_path(str(ROOT / "bench" / "calibration.py"))


@pytest.mark.parametrize("scenario", ["null", "strong"])
def test_coverage_on_the_1017_image_composition(cal, scenario):
    n, _, _ = cal["structure"]("cifar10-b-1017")
    p = cal["scenario_p"]("cifar10-b-1017", scenario, n)
    truth = cal["truths"](n, p, np.random.default_rng(1), draws=1000)
    results = cal["simulate"](n, p, 40, seed=7, bootstrap=200, permutations=99)
    rows = cal["score"](results, truth)
    for name in ("accuracy", "macro_std_debiased", "macro_std", "macro_std_excess", "worst_cell_accuracy",
                 "worst_subgroup_accuracy", "subgroup_gap", "mean_cell_accuracy", "class_accuracy",
                 "subgroup_accuracy"):
        assert rows[name]["coverage"] >= 0.8, (scenario, name, rows[name])
    for name in ("accuracy", "macro_std_debiased", "macro_std", "worst_cell_accuracy", "subgroup_gap"):
        assert rows[name]["contains_estimate"] == 1.0, name
    assert abs(rows["macro_std_debiased"]["bias"]) < abs(rows["macro_std vs true MacroStd"]["bias"])
    if scenario == "null":
        assert rows["p_subgroup_effect"]["reject_5pct"] <= 0.2
    else:
        assert rows["p_subgroup_effect"]["reject_5pct"] >= 0.9
