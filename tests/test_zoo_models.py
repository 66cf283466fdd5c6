"""Model zoo: bundled weights, sha256 and prefix checks, look-up order, and every kind of model SPEC."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarb.errors import CifarbError, UsageError
from cifarb.models import build_model, zoo
from cifarb.runs import RunDir

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = "resnet20-12fca82f.th"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _outputs(module: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return module.eval()(x)


def _random_state(arch: str, num_classes: int = 10, seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = build_model(arch, num_classes=num_classes)
    # Give BN non-trivial statistics so a wrong load would show in the outputs.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def _save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


# --- bundled ResNet20 ---------------------------------------------------------------------------


def test_bundled_weights_equal_the_original_checkpoint(shared_models):
    original = torch.load(shared_models / ORIGINAL, map_location="cpu", weights_only=True)["state_dict"]
    from safetensors.torch import load_file

    bundled = load_file(str(zoo.bundled_path(zoo.ZOO["resnet20"])))
    assert set(bundled) == {k.removeprefix("module.") for k in original}
    for key, value in original.items():
        assert torch.equal(bundled[key.removeprefix("module.")], value), key


def test_sha256_of_bundle_and_original_match_the_card(shared_models):
    card = zoo.ZOO["resnet20"]
    assert _sha(shared_models / ORIGINAL) == card.sha256
    assert _sha(zoo.bundled_path(card)) == card.bundled_sha256
    assert card.filename == ORIGINAL
    from safetensors import safe_open

    with safe_open(str(zoo.bundled_path(card)), "pt") as fh:
        info = json.loads(fh.metadata()["cifarb"])
    assert info["source_sha256"] == card.sha256
    assert (zoo.bundled_path(card).parent / "LICENSE.BSD-2").read_text().startswith("Copyright (c) 2018, Yerlan Idelbayev")


def test_conversion_script_reproduces_the_bundle_byte_for_byte(shared_models, tmp_path):
    spec = importlib.util.spec_from_file_location("convert_resnet20", REPO / "scripts" / "convert_resnet20.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(shared_models / ORIGINAL), "--out", str(tmp_path)]) == 0
    assert _sha(tmp_path / "resnet20.safetensors") == zoo.ZOO["resnet20"].bundled_sha256
    assert (tmp_path / "LICENSE.BSD-2").exists()


def test_zoo_resnet20_is_offline_and_matches_the_original(shared_models):
    loaded = zoo.resolve_model("resnet20", num_classes=10)
    assert loaded.arch == "resnet20" and loaded.card is zoo.ZOO["resnet20"]
    assert loaded.mean == MEAN and loaded.std == STD
    assert loaded.sha256 == zoo.ZOO["resnet20"].bundled_sha256
    ref = build_model("resnet20")
    state = torch.load(shared_models / ORIGINAL, map_location="cpu", weights_only=True)["state_dict"]
    ref.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=False)
    assert torch.equal(_outputs(loaded.module), _outputs(ref))
    assert not loaded.module.training


def test_cards_are_complete():
    # the akamaster cards come first; the chenyaofo cards are tested in test_zoo_chenyaofo.py
    assert list(zoo.ZOO)[:5] == ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]
    for card in list(zoo.ZOO.values())[:5]:
        assert card.url.endswith("/" + card.filename) and card.url.startswith("https://github.com/akamaster/")
        assert card.filename.startswith(card.name + "-" + card.sha256[:8])
        assert 0.9 < card.reported_accuracy < 0.95
        assert "BSD-2" in card.license and card.citations
        assert len(card.sha256) == (8 if card.sha256_is_prefix else 64)
        assert card.name in card.describe()
    assert zoo.ZOO["resnet110"].sha256_is_prefix
    assert "prefix" in zoo.ZOO["resnet110"].describe() and "check_hash" in zoo.ZOO["resnet110"].describe()


def test_card_for_sha256_full_bundled_and_prefix():
    assert zoo.card_for_sha256(zoo.ZOO["resnet56"].sha256).name == "resnet56"
    assert zoo.card_for_sha256(zoo.ZOO["resnet20"].bundled_sha256).name == "resnet20"
    assert zoo.card_for_sha256("1d1ed7c2" + "0" * 56).name == "resnet110"
    assert zoo.card_for_sha256("1d1ed7c3" + "0" * 56) is None
    # a full sha256 only matches exactly, never by prefix
    assert zoo.card_for_sha256(zoo.ZOO["resnet56"].sha256[:-1] + "0") is None


# --- look-up of downloaded zoo weights ----------------------------------------------------------


@pytest.fixture
def fake_zoo_file(tmp_path, monkeypatch):
    """A random-init resnet32 checkpoint registered as the resnet32 card (its sha256 put on the card)."""
    state = _random_state("resnet32")
    src = _save({"state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "src.th")
    card = dataclasses.replace(zoo.ZOO["resnet32"], sha256=_sha(src))
    monkeypatch.setitem(zoo.ZOO, "resnet32", card)
    return src, card, state


def test_missing_weights_say_where_to_put_them():
    with pytest.raises(CifarbError) as err:
        zoo.resolve_model("resnet56")
    msg = str(err.value)
    assert "cifarb data where resnet56" in msg
    assert str(zoo.default_weight_path("resnet56")) in msg
    assert zoo.ZOO["resnet56"].url in msg and "CIFARB_MODELS" in msg


def test_data_where_prints_the_path_the_zoo_looks_at(capsys):
    from cifarb.cli import main

    assert main(["data", "where", "resnet56"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first[0] == str(zoo.default_weight_path("resnet56")) == str(zoo.weight_candidates("resnet56")[-1])
    assert first[2] == "sha256:" + zoo.ZOO["resnet56"].sha256 and first[3] == zoo.ZOO["resnet56"].url


def test_weights_found_in_cache_then_cifarb_models_first(fake_zoo_file, tmp_path, monkeypatch):
    src, card, state = fake_zoo_file
    cached = zoo.default_weight_path("resnet32")
    assert cached.parent == zoo.models_cache_dir()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(src.read_bytes())
    loaded = zoo.resolve_model("resnet32")
    assert loaded.source == str(cached) and loaded.sha256 == card.sha256 and loaded.card is card
    ref = build_model("resnet32")
    ref.load_state_dict(state)
    assert torch.equal(_outputs(loaded.module), _outputs(ref))

    models = tmp_path / "models_env"
    models.mkdir()
    (models / card.filename).write_bytes(src.read_bytes())
    monkeypatch.setenv("CIFARB_MODELS", str(models))
    assert zoo.weight_candidates("resnet32")[0] == models / card.filename
    assert zoo.resolve_model("resnet32").source == str(models / card.filename)


def test_a_wrong_file_under_the_zoo_name_is_refused(fake_zoo_file, tmp_path, monkeypatch):
    _, card, _ = fake_zoo_file
    models = tmp_path / "m"
    models.mkdir()
    _save({"state_dict": _random_state("resnet32", seed=7)}, models / card.filename)
    monkeypatch.setenv("CIFARB_MODELS", str(models))
    with pytest.raises(CifarbError, match=f"expected {card.sha256}"):
        zoo.resolve_model("resnet32")


def test_prefix_card_accepts_by_prefix_and_refuses_otherwise(tmp_path, monkeypatch):
    state = _random_state("resnet110")
    good = _save({"state_dict": state}, tmp_path / "a.th")
    card = dataclasses.replace(zoo.ZOO["resnet110"], sha256=_sha(good)[:8])  # as published: a prefix only
    monkeypatch.setitem(zoo.ZOO, "resnet110", card)
    models = tmp_path / "m"
    models.mkdir()
    (models / card.filename).write_bytes(good.read_bytes())
    monkeypatch.setenv("CIFARB_MODELS", str(models))
    loaded = zoo.resolve_model("resnet110")
    assert loaded.sha256.startswith(card.sha256) and loaded.sha256 != card.sha256
    _save({"state_dict": _random_state("resnet110", seed=3)}, models / card.filename)
    with pytest.raises(CifarbError, match=f"starting with {card.sha256}"):
        zoo.resolve_model("resnet110")


# --- checkpoint files ---------------------------------------------------------------------------


def test_published_checkpoint_is_recognised_by_sha256(shared_models):
    loaded = zoo.resolve_model(str(shared_models / ORIGINAL))
    assert loaded.card is zoo.ZOO["resnet20"] and loaded.arch == "resnet20"
    assert loaded.mean == MEAN and loaded.std == STD
    assert loaded.sha256 == zoo.ZOO["resnet20"].sha256
    assert torch.equal(_outputs(loaded.module), _outputs(zoo.resolve_model("resnet20").module))
    with pytest.raises(CifarbError, match="does not fit --arch resnet56"):
        zoo.resolve_model(str(shared_models / ORIGINAL), arch="resnet56")


def test_checkpoint_with_arch_and_normalisation(tmp_path):
    state = _random_state("resnet32")
    path = _save({"model": state, "epoch": 3}, tmp_path / "ck.pt")
    with pytest.raises(UsageError, match="--arch"):
        zoo.resolve_model(str(path))
    with pytest.raises(UsageError, match="--mean"):
        zoo.resolve_model(str(path), arch="resnet32")
    loaded = zoo.resolve_model(str(path), arch="resnet32", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    ref = build_model("resnet32")
    ref.load_state_dict(state)
    assert torch.equal(_outputs(loaded.module), _outputs(ref))
    assert loaded.card is None and loaded.sha256 == _sha(path) and loaded.std == (0.25, 0.25, 0.25)


def test_safetensors_checkpoint_and_recorded_normalisation(tmp_path):
    from safetensors.torch import save_file

    state = _random_state("resnet20")
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    loaded = zoo.resolve_model(str(st), arch="resnet20", mean=MEAN, std=STD)
    assert loaded.arch == "resnet20"
    # a torch checkpoint that records its own normalisation needs no --mean/--std
    pt = _save({"model": state, "mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}, tmp_path / "n.pt")
    loaded = zoo.resolve_model(str(pt), arch="resnet20")
    assert loaded.mean == (0.1, 0.2, 0.3) and loaded.std == (0.4, 0.5, 0.6)


def test_wrong_arch_checkpoint_is_an_error_naming_the_misfit(tmp_path):
    path = _save({"state_dict": _random_state("resnet32")}, tmp_path / "r32.th")
    with pytest.raises(CifarbError) as err:
        zoo.resolve_model(str(path), arch="resnet20", mean=MEAN, std=STD)
    assert "does not fit --arch resnet20" in str(err.value) and "unexpected keys" in str(err.value)
    with pytest.raises(CifarbError, match="missing keys"):
        zoo.resolve_model(str(path), arch="resnet44", mean=MEAN, std=STD)
    wide = _save(_random_state("resnet20", num_classes=100), tmp_path / "r20c100.pt")
    with pytest.raises(CifarbError, match=r"shape mismatches \(e.g. linear.weight: checkpoint \(100, 64\)"):
        zoo.resolve_model(str(wide), arch="resnet20", mean=MEAN, std=STD, num_classes=10)
    # without a dataset to match, the head width comes from the checkpoint
    assert zoo.resolve_model(str(wide), arch="resnet20", mean=MEAN, std=STD).num_classes == 100


def test_unsafe_or_damaged_checkpoints_are_clear_errors(tmp_path):
    good = _save({"state_dict": _random_state("resnet20")}, tmp_path / "ok.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CifarbError, match="truncated"):
        zoo.resolve_model(str(cut), arch="resnet20", mean=MEAN, std=STD)
    odd = _save({"state_dict": _random_state("resnet20"), "extra": Path("x")}, tmp_path / "odd.pt")
    with pytest.raises(CifarbError, match="other than tensors"):
        zoo.resolve_model(str(odd), arch="resnet20", mean=MEAN, std=STD)
    empty = _save({"epoch": 1}, tmp_path / "empty.pt")
    with pytest.raises(CifarbError, match="holds no state dict"):
        zoo.resolve_model(str(empty), arch="resnet20", mean=MEAN, std=STD)


def test_unknown_spec_and_bad_flags():
    with pytest.raises(CifarbError, match="neither a zoo name"):
        zoo.resolve_model("resnet57")
    with pytest.raises(UsageError, match="together"):
        zoo.resolve_model("resnet20", mean=MEAN)
    with pytest.raises(UsageError, match="unknown --arch"):
        zoo.resolve_model("resnet20", arch="vgg")
    with pytest.raises(UsageError, match="is a resnet20"):
        zoo.resolve_model("resnet20", arch="resnet56")
    with pytest.raises(CifarbError, match="predicts 10 classes"):
        zoo.resolve_model("resnet20", num_classes=100)


# --- module:callable ----------------------------------------------------------------------------


def test_module_callable_spec(tmp_path, monkeypatch):
    (tmp_path / "my_nets_for_test.py").write_text(textwrap.dedent("""
        import torch
        from cifarb.models import build_model

        def build(num_classes=10):
            torch.manual_seed(5)
            return build_model("resnet20", num_classes=num_classes)

        def not_a_module():
            return 3
    """))
    with pytest.raises(UsageError, match="--mean"):
        zoo.resolve_model("my_nets_for_test:build")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = zoo.resolve_model("my_nets_for_test:build", mean=MEAN, std=STD, num_classes=100)
    assert loaded.sha256 is None and loaded.arch is None and not loaded.module.training
    assert _outputs(loaded.module).shape == (4, 100)
    by_file = zoo.resolve_model(f"{tmp_path / 'my_nets_for_test.py'}:build", mean=MEAN, std=STD)
    assert torch.equal(_outputs(by_file.module), _outputs(zoo.resolve_model(
        "my_nets_for_test:build", mean=MEAN, std=STD).module))
    with pytest.raises(CifarbError, match="not a torch.nn.Module"):
        zoo.resolve_model("my_nets_for_test:not_a_module", mean=MEAN, std=STD)
    with pytest.raises(CifarbError, match="has no attribute"):
        zoo.resolve_model("my_nets_for_test:nope", mean=MEAN, std=STD)
    with pytest.raises(CifarbError, match="cannot import module"):
        zoo.resolve_model("no_such_module_xyz:build", mean=MEAN, std=STD)


# --- run directories ----------------------------------------------------------------------------


def _make_run(path: Path, arch: str = "resnet20", norm: bool = True, seed: int = 2) -> dict:
    state = _random_state(arch, seed=seed)
    config = {"arch": arch, "dataset": "cifar10", "aug": "standard"}
    if norm:
        config.update(mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26])
    run = RunDir(path).create()
    run.write_manifest({"config": config, "seed": 0})
    # a training checkpoint carries more than tensors (optimizer state, RNG, epoch), all weights-only-safe
    run.save_checkpoint({"model": {"module." + k: v for k, v in state.items()}, "epoch": 2,
                         "rng": {"numpy": {"kind": "MT19937", "key": torch.arange(624), "pos": 3}}})
    return state


def test_an_old_run_checkpoint_with_python_objects_names_the_conversion(tmp_path):
    _make_run(tmp_path / "old")
    # cifarb < 0.2 saved numpy's RNG state as an ndarray, which the weights-only unpickler refuses
    run = RunDir(tmp_path / "old")
    run.save_checkpoint({**torch.load(run.checkpoint_path(), weights_only=True), "rng": np.random.get_state()})
    for spec in (tmp_path / "old", run.checkpoint_path()):
        with pytest.raises(CifarbError, match="cifarb convert-checkpoint --trust-this-file"):
            zoo.resolve_model(str(spec), num_classes=10)


def test_run_directory_spec(tmp_path):
    state = _make_run(tmp_path / "run")
    loaded = zoo.resolve_model(str(tmp_path / "run"), num_classes=10)
    assert loaded.arch == "resnet20" and loaded.mean == (0.49, 0.48, 0.45) and loaded.std == (0.25, 0.24, 0.26)
    assert loaded.sha256 == _sha(tmp_path / "run" / "checkpoints" / "last.pt")
    ref = build_model("resnet20")
    ref.load_state_dict(state)
    assert torch.equal(_outputs(loaded.module), _outputs(ref))
    # the run's checkpoint file alone finds its architecture and normalisation in the manifest
    direct = zoo.resolve_model(str(tmp_path / "run" / "checkpoints" / "last.pt"))
    assert direct.arch == "resnet20" and direct.mean == loaded.mean
    with pytest.raises(CifarbError, match="does not fit --arch resnet56"):
        zoo.resolve_model(str(tmp_path / "run"), arch="resnet56")
    with pytest.raises(CifarbError, match="predicts 10 classes"):
        zoo.resolve_model(str(tmp_path / "run"), num_classes=100)


def test_run_directory_errors(tmp_path):
    _make_run(tmp_path / "nonorm", norm=False)
    with pytest.raises(CifarbError, match="normalisation"):
        zoo.resolve_model(str(tmp_path / "nonorm"))
    assert zoo.resolve_model(str(tmp_path / "nonorm"), mean=MEAN, std=STD).mean == MEAN
    (tmp_path / "plain").mkdir()
    with pytest.raises(CifarbError, match="not a cifarb run"):
        zoo.resolve_model(str(tmp_path / "plain"))
    RunDir(tmp_path / "fresh").create().write_manifest({"config": {"arch": "resnet20", "dataset": "cifar10",
                                                                    "mean": MEAN, "std": STD}})
    with pytest.raises(CifarbError, match="no checkpoint"):
        zoo.resolve_model(str(tmp_path / "fresh"))


def test_importing_the_zoo_does_not_import_torch():
    code = "import sys, cifarb.models.zoo as z; z.ZOO['resnet56'].describe(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
