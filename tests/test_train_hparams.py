"""Recipe registry, LR schedules (vs torch's own schedulers), config files and resume compatibility."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarb.errors import CifarbError, UsageError
from cifarb.models import ARCHS
from cifarb.train.config import (
    TrainConfig,
    build_config,
    check_resume_compatible,
    load_config_file,
    validate_config,
)
from cifarb.train.hparams import RECIPES, LRSchedule, Recipe, recipe_for, resolve_recipe


def torch_lrs(scheduler_factory, steps: int, lr: float = 1.0) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = scheduler_factory(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_every_architecture_has_a_valid_recipe():
    assert set(RECIPES) == set(ARCHS)
    for arch in ARCHS:
        r = recipe_for(arch)
        assert r.lr > 0 and r.batch_size > 0 and r.epochs > 0 and r.source
        resolve_recipe(arch)  # validates
    assert recipe_for("resnet20").weight_decay == 1e-4 and recipe_for("resnet20").milestones == (0.5, 0.75)
    assert recipe_for("fastnet").label_smoothing == 0.2 and recipe_for("fastnet").nesterov


def test_step_schedule_matches_multisteplr_at_full_length():
    # the published ResNet recipe: 200 epochs, x0.1 at epochs 100 and 150
    spe = 1
    ours = LRSchedule(recipe_for("resnet20"), epochs=200, steps_per_epoch=spe)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [100 * spe, 150 * spe], 0.1), 200 * spe)
    assert [ours(s) for s in range(200 * spe)] == pytest.approx(ref)


@settings(max_examples=30, deadline=None)
@given(epochs=st.integers(1, 60), spe=st.integers(1, 20))
def test_cosine_schedule_matches_cosineannealing_and_rescales(epochs, spe):
    total = epochs * spe
    ours = LRSchedule(recipe_for("resnet18"), epochs=epochs, steps_per_epoch=spe)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total), total)
    assert [ours(s) for s in range(total)] == pytest.approx(ref, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(epochs=st.integers(1, 60), spe=st.integers(1, 20))
def test_onecycle_is_the_triangle_rescaled_to_the_run(epochs, spe):
    r = recipe_for("fastnet")
    total = epochs * spe
    sched = LRSchedule(r, epochs=epochs, steps_per_epoch=spe)
    warm = round(r.warmup * total)
    for step in range(total):
        if step < warm:
            expected = r.warmup_start + (1 - r.warmup_start) * step / warm
        else:
            expected = 1 + (r.final - 1) * (step - warm) / max(1, total - warm)
        assert sched(step) == pytest.approx(expected)
    values = [sched(s) for s in range(total)]
    assert max(values) <= 1.0 and values[warm:] == sorted(values[warm:], reverse=True)


def test_milestones_scale_with_epochs():
    r = recipe_for("wrn28_10")  # x0.2 at 30 %, 60 %, 80 %
    s = LRSchedule(r, epochs=10, steps_per_epoch=5)
    assert [s(i) for i in (14, 15, 29, 30, 39, 40)] == pytest.approx([1, 0.2, 0.2, 0.04, 0.04, 0.008])


def test_resnet110_warmup_starts_at_a_tenth():
    s = LRSchedule(recipe_for("resnet110"), epochs=200, steps_per_epoch=391)
    assert s(0) == pytest.approx(0.1) and s(391 + 5) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "override, word",
    [
        ({"lr": 0}, "lr"), ({"momentum": 1.0}, "momentum"), ({"schedule": "poly"}, "schedule"),
        ({"milestones": [0.75, 0.5]}, "milestones"), ({"milestones": [1.5]}, "milestones"),
        ({"batch_size": 2.5}, "batch_size"), ({"nesterov": "yes"}, "nesterov"), ({"lr": float("nan")}, "lr"),
        ({"warmup": 1.0}, "warmup"), ({"typo": 1}, "typo"), ({"optimizer": "lion"}, "optimizer"),
    ],
)
def test_bad_recipe_overrides_are_refused(override, word):
    with pytest.raises(CifarbError, match=word):
        resolve_recipe("resnet20", override)


def test_overrides_apply():
    r = resolve_recipe("resnet20", {"momentum": 0.5, "milestones": [0.3], "schedule": "step"})
    assert isinstance(r, Recipe) and r.momentum == 0.5 and r.milestones == (0.3,)
    assert r.to_dict()["milestones"] == [0.3]


def test_config_file_types_and_precedence(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('arch = "resnet20"\naug = "standard"\nlr = 1\nbatch-size = 32\n[hparams]\ngamma = 0.5\n')
    values = load_config_file(f)
    assert values == {"arch": "resnet20", "aug": "standard", "lr": 1, "batch_size": 32, "hparams": {"gamma": 0.5}}
    cfg = build_config({"batch_size": 64, "lr": None, "hparams": {"momentum": 0.8}}, f)
    assert cfg.batch_size == 64 and cfg.lr == 1 and cfg.hparams == {"gamma": 0.5, "momentum": 0.8}
    for text, word in [('epochs = "3"', "epochs"), ("out = \"x\"", "command line"), ("seed = true", "seed"),
                       ("[oops", "TOML")]:
        f.write_text(text + "\n")
        with pytest.raises(CifarbError, match=word):
            load_config_file(f)
    with pytest.raises(CifarbError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")


def test_validate_config_messages():
    ok = TrainConfig(dataset="cifar10", arch="fastnet", aug="standard+mixup")
    validate_config(ok)
    bad = [
        (TrainConfig(arch="fastnet", aug="standard"), "--dataset is required"),
        (TrainConfig(dataset="svhn", arch="fastnet", aug="standard"), "--dataset"),
        (TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", epochs=0), "--epochs"),
        (TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", lr=-1.0), "--lr"),
        (TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", lr=math.inf), "--lr"),
        (TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", flowaug_p=2.0), "--flowaug-p"),
        (TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", flowaug_mode="later"), "--flowaug-mode"),
        (TrainConfig(dataset="cifar10", arch="fastnet", aug="flowaug"), "--flow"),
        (TrainConfig(dataset="cifar10", arch="fastnet", aug="flowaug", flow="/nonexistent/flow.pt"), "does not exist"),
    ]
    for cfg, word in bad:
        with pytest.raises(UsageError, match=word):
            validate_config(cfg)


def test_resume_takes_the_saved_config_and_refuses_conflicts():
    saved = TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", epochs=5, lr=0.2, root="/data").to_dict()
    saved["num_classes"] = 10  # extra manifest keys are ignored
    now = TrainConfig(out="run", resume=True, lr=0.2, device="cpu")
    merged = check_resume_compatible(saved, now, given={"out", "resume", "lr", "device"})
    assert (merged.arch, merged.epochs, merged.root, merged.device, merged.resume) == ("fastnet", 5, "/data", "cpu", True)
    # a larger --epochs extends the run (issue #16's resume rule); fewer is a conflict
    assert check_resume_compatible(saved, TrainConfig(out="run", resume=True, epochs=9), given={"epochs"}).epochs == 9
    with pytest.raises(UsageError, match="--epochs.*larger"):
        check_resume_compatible(saved, TrainConfig(out="run", resume=True, epochs=3), given={"epochs"})
