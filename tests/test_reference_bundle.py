"""Bundled reference predictions: reproducible conversion, no CIFAR-10.1 labels, cards, citations, 10.1 accuracies."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cifarb.cli import main
from cifarb.data._npz import read_npz
from cifarb.reference import load_reference

REPO = Path(__file__).resolve().parents[1]
SHARED_REPO = REPO.parent / "shared" / "cifar10.1-repo"
ASSET = REPO / "src" / "cifarb" / "reference" / "assets" / "cifar10_reference.npz"
ENTRY = re.compile(r"^@(\w+)\{([\w.-]+),\n(.*)\n\}$", re.S)


@pytest.fixture
def shared_repo() -> Path:
    if not (SHARED_REPO / "model_predictions" / "original_predictions").is_dir():
        pytest.skip(f"CIFAR-10.1 model predictions not found at {SHARED_REPO} (../shared is absent)")
    return SHARED_REPO


def test_conversion_reruns_to_the_same_bytes(shared_repo, tmp_path):
    out, lic = tmp_path / "assets", tmp_path / "LICENSES"
    subprocess.run([sys.executable, str(REPO / "scripts" / "convert_reference.py"), "--shared",
                    str(shared_repo.parent), "--out", str(out), "--licenses", str(lic)],
                   check=True, capture_output=True)
    assert (out / ASSET.name).read_bytes() == ASSET.read_bytes()
    shipped = REPO / "src" / "cifarb" / "LICENSES" / "CIFAR-10.1-predictions-LICENSE.MIT"
    assert (lic / shipped.name).read_bytes() == shipped.read_bytes() == (shared_repo / "LICENSE.MIT").read_bytes()


def test_bundle_matches_the_json_files_and_records_their_sha256(shared_repo):
    ref = load_reference()
    stems = sorted(p.name.removesuffix("_predictions.json")
                   for p in (shared_repo / "model_predictions" / "original_predictions").glob("*.json"))
    assert ref.names == stems and len(stems) == 30
    assert "densenet_BC_100_12" in ref.names and "shake_shake_26_2x64d_SSI" in ref.names  # case preserved
    for folder, key in (("original_predictions", None), ("v4_predictions", "v4"), ("v6_predictions", "v6")):
        for name in ref.names[::7]:
            path = shared_repo / "model_predictions" / folder / f"{name}_predictions.json"
            values = json.loads(path.read_text())
            got = ref.cifar10[name] if key is None else ref.cifar10_1[key][name]
            assert got.tolist() == values
            rel = f"model_predictions/{folder}/{name}_predictions.json"
            assert ref.provenance["source_sha256"][rel] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(ref.provenance["source_sha256"]) == 90


def test_no_cifar10_1_labels_are_bundled_and_accuracies_match_them(shared_repo):
    z = read_npz(ASSET)
    ref = load_reference()
    for version, n in (("v4", 2021), ("v6", 2000)):
        labels = np.load(shared_repo / f"cifar10.1_{version}_labels.npy")
        for key, arr in z.items():  # no array of the labels' length equals (or nearly equals) the labels
            if arr.shape == (n,):
                assert (arr.astype(np.int64) == labels).mean() < 0.95, key
        for name in ref.names:
            acc = ref.cifar10_1_accuracy[version][name]
            k = int((ref.cifar10_1[version][name] == labels).sum())
            assert (acc.correct, acc.n) == (k, n)
            lo, hi = acc.ci95
            assert lo < acc.accuracy < hi
    assert not [k for k in z if "label" in k and not k.endswith(("_labels_file", "_labels_gitblob"))]


def test_wilson_interval_of_the_shipped_accuracies():
    # an independent Wilson computation: the roots in p of (k/n - p)^2 = z^2 p (1 - p) / n
    ref = load_reference()
    z = 1.959963984540054
    for version in ("v4", "v6"):
        for name in ref.names[::5]:
            acc = ref.cifar10_1_accuracy[version][name]
            phat, n = acc.correct / acc.n, acc.n
            a, b, c = 1 + z * z / n, -(2 * phat + z * z / n), phat * phat
            roots = sorted(np.roots([a, b, c]).real)
            assert acc.ci95 == pytest.approx(tuple(roots), abs=1e-12)


def test_cards_and_citations():
    ref = load_reference()
    assert set(ref.cards) == set(ref.names)
    from cifarb.citations import CITATIONS

    known = {**CITATIONS, **ref.citations}
    for name, card in ref.cards.items():
        assert card.display_name and card.family
        assert "recht2018cifar" in card.citations
        assert set(card.citations) <= set(known), name
        for key, value in card.name_says.items():
            # a stated fact must be visible in the file name (no invented parameter counts)
            if isinstance(value, int) and not isinstance(value, bool) and key != "features":
                assert str(value) in name, (name, key)
    assert ref.cards["wrn_28_10"].name_says == {"depth": 28, "widen_factor": 10}
    for key, cit in ref.citations.items():
        m = ENTRY.match(cit.bibtex)
        assert m and m.group(2) == key and cit.bibtex.count("{") == cit.bibtex.count("}")
        assert key not in CITATIONS


def test_cite_lists_and_prints_reference_models(capsys):
    assert main(["cite", "--list"]) == 0
    out = capsys.readouterr().out
    assert "reference models" in out and "densenet_BC_100_12" in out and "huang2017densely" in out
    assert main(["cite", "shake_shake_26_2x64d_SSI_cutout16"]) == 0
    keys = re.findall(r"^@\w+\{([\w.-]+),", capsys.readouterr().out, re.M)
    assert {"gastaldi2017shake", "devries2017cutout", "recht2018cifar"} <= set(keys)
    assert len(keys) == len(set(keys))
    assert main(["cite", "reference"]) == 0
    keys = re.findall(r"^@\w+\{([\w.-]+),", capsys.readouterr().out, re.M)
    assert set(ref_keys := load_reference().citations) <= set(keys), ref_keys


def test_unknown_reference_model_suggests_names():
    from cifarb.errors import CifarbError

    with pytest.raises(CifarbError, match="did you mean resnet_basic_56"):
        load_reference().check_names(["resnet_basic56"])
