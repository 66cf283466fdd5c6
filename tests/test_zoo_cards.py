"""Zoo cards are data: the cards read from models/assets/*_cards.toml equal what the Python literals held.

`fixtures_zoo/zoo_cards.json` is every card of `zoo.ZOO` as written out before the akamaster cards moved
from Python literals into a card table (#17); the akamaster values are also spelled out here, as the
literals had them, so a reader sees the published checksums without opening the fixture.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from cifarb.models import zoo

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = json.loads((REPO / "tests" / "fixtures_zoo" / "zoo_cards.json").read_text())["cards"]

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
# (depth, sha256 or its published prefix, reported accuracy): the old `_akamaster(...)` calls in zoo.py
_AKAMASTER = [
    (20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 0.9178),
    (32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 0.9278),
    (44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 0.9314),
    (56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 0.9362),
    (110, "1d1ed7c2", 0.9368),
]


def _as_json(card: zoo.ModelCard) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(card)))


def test_every_card_equals_the_snapshot_in_order():
    assert [c.name for c in zoo.ZOO.values()] == [c["name"] for c in SNAPSHOT]
    for card, want in zip(zoo.ZOO.values(), SNAPSHOT, strict=True):
        assert _as_json(card) == want, card.name
        # tuples, as the dataclass declares (JSON has only lists)
        assert isinstance(card.mean, tuple) and isinstance(card.std, tuple) and isinstance(card.citations, tuple)


def test_akamaster_cards_hold_the_old_literal_values():
    for depth, sha256, accuracy in _AKAMASTER:
        filename = f"resnet{depth}-{sha256[:8]}.th"
        bundled = ("resnet20.safetensors", "9fddb1d3b1a550115a4790bd92b21cadc710ea746ea63fb77efaf8a5b3935e35") \
            if depth == 20 else (None, None)
        want = zoo.ModelCard(
            name=f"resnet{depth}", arch=f"resnet{depth}", filename=filename, url=_URL + filename,
            sha256=sha256, reported_accuracy=accuracy, mean=_IMAGENET[0], std=_IMAGENET[1], num_classes=10,
            dataset="cifar10", license="BSD-2-Clause, Copyright (c) 2018, Yerlan Idelbayev",
            citations=("he2016resnet", "idelbayev2018resnet"), sha256_is_prefix=depth == 110,
            bundled=bundled[0], bundled_sha256=bundled[1],
            notes="option-A shortcuts; published by akamaster/pytorch_resnet_cifar10",
        )
        assert zoo.ZOO[f"resnet{depth}"] == want


def test_card_tables_ship_as_package_data():
    import fnmatch
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cifarb"]
    package = REPO / "src" / "cifarb"
    tables = sorted((package / "models" / "assets").glob("*_cards.toml"))
    assert [p.name for p in tables] == ["akamaster_cards.toml", "chenyaofo_cards.toml"]
    for path in tables:
        rel = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), rel


def test_unknown_model_names_get_a_did_you_mean(tmp_path, monkeypatch):
    import pytest

    from cifarb.errors import CifarbError

    monkeypatch.chdir(tmp_path)  # no file called resnet2 here
    with pytest.raises(CifarbError, match=r"unknown model 'resnet2' \(did you mean 'resnet20'\?\)"):
        zoo.resolve_model("resnet2")
    with pytest.raises(CifarbError, match=r"did you mean 'chenyaofo-cifar100-resnet20'\?"):
        zoo.resolve_model("chenyaofo-cifar100-resnet2")
    with pytest.raises(CifarbError, match=r"unknown zoo model 'resnet5' \(did you mean 'resnet56'\?\)"):
        zoo.get_card("resnet5")
    # no close name, or a path: the message lists the zoo names and says what else a SPEC may be
    for spec in ("nosuchmodel", "runs/resnet2", "resnet2.pt"):
        with pytest.raises(CifarbError, match="neither a zoo name") as err:
            zoo.resolve_model(spec)
        assert "did you mean" not in str(err.value) and "resnet110" in str(err.value)


def test_loaded_model_is_built_by_keyword_only():
    import pytest

    with pytest.raises(TypeError):
        zoo.LoadedModel(None, (0.5,) * 3, (0.2,) * 3, None, "x", None)  # type: ignore[misc]
    loaded = zoo.LoadedModel(module=None, mean=(0.5,) * 3, std=(0.2,) * 3, arch=None, spec="x", sha256=None)
    assert loaded.card is None and loaded.num_classes is None and loaded.source == "" and loaded.info == {}


def test_did_you_mean_prefers_the_name_the_typo_begins_among_ties():
    from cifarb.errors import did_you_mean

    # 'resnet2' is as close to resnet32 as to resnet20 by difflib's ratio; the prefix decides
    assert did_you_mean("resnet2", ["resnet20", "resnet32", "resnet44"]) == " (did you mean 'resnet20'?)"
    assert did_you_mean("resnt44", ["resnet20", "resnet44"]) == " (did you mean 'resnet44'?)"
    assert did_you_mean("zzz", ["resnet20"]) == ""
