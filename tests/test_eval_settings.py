"""EvalSettings: one object for an evaluation's settings; it round-trips through the result's `settings`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import cifarb
from cifarb.data.cifar_b import DEFAULT_SUBGROUP_NAMES
from cifarb.eval.settings import METRIC_FIELDS, EvalSettings

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@pytest.fixture(scope="module")
def sample():
    from cifarb.data.sample import load_demo_sample

    return load_demo_sample()


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 10))


SETTINGS = EvalSettings(bootstrap=40, seed=7, min_cell_size=2, min_cell_size_worst=5, permutations=19,
                        subgroup_names=tuple(reversed(DEFAULT_SUBGROUP_NAMES)), tta="flip", batch_size=128,
                        device="cpu", progress=False)


def test_settings_round_trip_through_the_result(sample):
    ev = cifarb.evaluate(_net(), dataset="cifar10-b", data=sample, mean=MEAN, std=STD, settings=SETTINGS)
    recorded = ev.to_dict()["settings"]
    for key, value in SETTINGS.to_settings().items():
        assert recorded[key] == value, key
    assert recorded["subgroup_names"] == list(SETTINGS.subgroup_names)
    # what the result records is enough to rebuild the settings (inference fields aside)
    back = EvalSettings.from_settings(recorded, batch_size=128, device="cpu", progress=False)
    assert back == SETTINGS


def test_old_keywords_settings_object_and_eval_evaluate_agree(sample):
    """The public keywords still work, build the same settings, and cifarb.evaluate / cifarb.eval.evaluate agree."""
    from cifarb.eval import evaluate as eval_evaluate

    by_object = cifarb.evaluate(_net(), dataset="cifar10-b", data=sample, mean=MEAN, std=STD, settings=SETTINGS)
    loose = {f.name: getattr(SETTINGS, f.name) for f in dataclasses.fields(SETTINGS)}
    by_keywords = cifarb.evaluate(_net(), dataset="cifar10-b", data=sample, mean=MEAN, std=STD, **loose)
    assert by_keywords.to_dict() == by_object.to_dict()
    loaded = cifarb.load_model(_net(), mean=MEAN, std=STD)
    assert eval_evaluate(loaded, "cifar10-b", data=sample, **loose) == by_object.to_dict()
    # a keyword overrides the object's field
    more = cifarb.evaluate(_net(), dataset="cifar10-b", data=sample, mean=MEAN, std=STD, settings=SETTINGS,
                           bootstrap=0)
    assert more.to_dict()["settings"]["bootstrap"] == 0 and more.to_dict()["ci95"] is None


def test_the_recorded_seed_is_the_one_the_intervals_used(sample):
    """Independent check: compute_metrics on the saved predictions with the recorded settings gives the same CIs."""
    from cifarb.metrics import compute_metrics

    ev = cifarb.evaluate(_net(), dataset="cifar10-b", data=sample, mean=MEAN, std=STD, settings=SETTINGS)
    frame, rec = ev.predictions, ev.to_dict()["settings"]
    again = compute_metrics(frame["label"].to_numpy(), frame["prediction"].to_numpy(), frame["subgroup"].to_numpy(),
                            n_classes=10, n_subgroups=8, subgroup_names=rec["subgroup_names"],
                            **{k: rec[k] for k in METRIC_FIELDS})
    _assert_same_intervals(again.to_dict()["ci95"], ev.to_dict()["ci95"])
    assert again.to_dict()["p_subgroup_effect"] == ev.to_dict()["p_subgroup_effect"]


def test_build_checks_names_and_the_object_is_frozen():
    assert EvalSettings.build() == EvalSettings()
    assert EvalSettings.build(SETTINGS) is SETTINGS
    assert EvalSettings.build(SETTINGS, seed=3).seed == 3 and SETTINGS.seed == 7
    with pytest.raises(TypeError, match="bootstrapp"):
        EvalSettings.build(bootstrapp=10)
    with pytest.raises(TypeError, match="EvalSettings"):
        EvalSettings.build({"bootstrap": 10})  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        SETTINGS.seed = 1  # type: ignore[misc]
    assert EvalSettings(subgroup_names=["a", "b"]).subgroup_names == ("a", "b")
    assert hash(SETTINGS) == hash(EvalSettings.build(SETTINGS, seed=7))
    assert SETTINGS.metric_options() == {"bootstrap": 40, "seed": 7, "min_cell_size": 2, "min_cell_size_worst": 5,
                                         "permutations": 19}


def test_evaluate_predictions_records_the_same_settings():
    c10 = cifarb.load_cifar_b("cifar10")
    rng = np.random.default_rng(0)
    pred = np.where(rng.random(c10.labels.size) < 0.7, c10.labels, (c10.labels + 1) % 10)
    ev = cifarb.evaluate_predictions(pred, dataset="cifar10-b", bootstrap=30, seed=11, permutations=9)
    recorded = EvalSettings.from_settings(ev.to_dict()["settings"])
    assert recorded.metric_options() == {"bootstrap": 30, "seed": 11, "min_cell_size": 1, "min_cell_size_worst": 10,
                                         "permutations": 9}


def _assert_same_intervals(got: dict, expected: dict) -> None:
    # pytest.approx takes no nested mappings: compare interval by interval (None = no interval)
    assert set(got) == set(expected)
    for key, bounds in expected.items():
        assert got[key] == (None if bounds is None else pytest.approx(bounds)), key
