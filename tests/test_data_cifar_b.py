"""Bundled CIFAR-B labels: FORMAT.md's measured counts, an exact join, reproducible conversion."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarb.data import cifar_b
from cifarb.errors import CifarbError

REPO = Path(__file__).resolve().parents[1]

# ../shared/cifar-b/FORMAT.md, "Counts (all 10,000 test images)"
TOTALS = {
    "cifar10": [2863, 1040, 2467, 676, 401, 2114, 168, 271],
    "cifar100": [2205, 1189, 2508, 1245, 759, 1635, 207, 252],
}
# FORMAT.md, "CIFAR-10 per class (ids 0..7)"
CIFAR10_PER_CLASS = {
    "airplane": [85, 112, 609, 81, 7, 102, 4, 0],
    "automobile": [177, 262, 147, 130, 34, 230, 15, 5],
    "bird": [453, 58, 179, 32, 32, 237, 0, 9],
    "cat": [171, 130, 137, 57, 84, 299, 63, 59],
    "deer": [604, 27, 99, 8, 25, 227, 4, 6],
    "dog": [271, 90, 124, 39, 81, 297, 58, 40],
    "frog": [417, 64, 75, 56, 49, 238, 15, 86],
    "horse": [493, 29, 108, 41, 50, 251, 7, 21],
    "ship": [71, 88, 711, 45, 15, 56, 0, 14],
    "truck": [121, 180, 278, 187, 24, 177, 2, 31],
}


def _cells(b: cifar_b.CifarB) -> np.ndarray:
    table = np.zeros((len(b.class_names), 8), dtype=np.int64)
    np.add.at(table, (b.labels, b.subgroups), 1)
    return table


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_subgroup_totals_match_format_md(dataset):
    b = cifar_b.load_cifar_b(dataset)
    assert b.labels.shape == b.subgroups.shape == (10_000,)
    assert np.bincount(b.subgroups, minlength=8).tolist() == TOTALS[dataset]
    # each class has its official size: 1,000 (CIFAR-10) or 100 (CIFAR-100) images
    per_class = 10_000 // len(b.class_names)
    assert np.bincount(b.labels).tolist() == [per_class] * len(b.class_names)


def test_cifar10_per_class_table_matches_format_md():
    b = cifar_b.load_cifar_b("cifar10")
    table = _cells(b)
    for c, name in enumerate(b.class_names):
        assert table[c].tolist() == CIFAR10_PER_CLASS[name], name
    nonempty = table[table > 0]
    assert (nonempty.size, (table == 0).sum(), nonempty.min(), int(np.median(nonempty)), (nonempty < 10).sum()) == (
        77, 3, 2, 81, 9)


def test_cifar100_cell_facts_match_format_md():
    b = cifar_b.load_cifar_b("cifar100-b")
    table = _cells(b)
    nonempty = table[table > 0]
    assert nonempty.size == 722 and (table == 0).sum() == 78
    assert (nonempty < 10).sum() == 360 and (nonempty < 5).sum() == 201 and np.median(nonempty) == 10
    assert b.coarse_labels is not None and b.coarse_class_names is not None
    assert len(b.coarse_class_names) == 20 and np.bincount(b.coarse_labels).tolist() == [500] * 20
    # every fine class belongs to exactly one coarse class
    pairs = {(int(f), int(c)) for f, c in zip(b.labels, b.coarse_labels)}
    assert len(pairs) == 100
    assert b.class_names[:2] == ["apple", "aquarium_fish"] and "maple_tree" in b.class_names


def test_bundle_records_original_sha256_and_ships_licence():
    b10, b100 = cifar_b.load_cifar_b("cifar10"), cifar_b.load_cifar_b("cifar100")
    assert b10.source_sha256 == "af4afa68b58b0e2e3162ea79d0f4bf17c489c9541cfa1c6a05f45e2b83a26ea4"
    assert b100.source_sha256 == "df1ef46babfd46bb75a846f04f96378865580965ab77783b592928042ff7a491"
    assert b10.source_file == "cifar10_bgd_cl2img_gp_fine.npy"
    licence = REPO / "src" / "cifarb" / "LICENSES" / "CIFAR-B-LICENSE.BSD-3"
    assert "Ming-Chang Chiu" in licence.read_text() and "BSD 3-Clause" in licence.read_text()
    # the bundles load without pickle
    with np.load(cifar_b.asset_path("cifar10_b.npz"), allow_pickle=False) as z:
        assert z["subgroup"].dtype == np.int8


def test_subgroup_names_default_and_override():
    assert cifar_b.resolve_subgroup_names(None) == ["green", "gray", "blue", "white", "black", "brown", "red", "other"]
    names = list("abcdefgh")
    assert cifar_b.load_cifar_b("cifar10", subgroup_names=names).subgroup_names == names
    with pytest.raises(CifarbError, match="8 non-empty"):
        cifar_b.resolve_subgroup_names(["a", "b"])
    with pytest.raises(CifarbError, match="distinct"):
        cifar_b.resolve_subgroup_names(list("aaaaaaaa"))


def test_subgroups_for_and_bad_indices():
    b = cifar_b.load_cifar_b("cifar10")
    idx = np.array([5, 0, 9999])
    assert cifar_b.subgroups_for("cifar10", idx).tolist() == b.subgroups[idx].tolist()
    assert b.labels_for([0, 1]).tolist() == [3, 8]  # official first test labels: cat, ship
    with pytest.raises(CifarbError, match="0..9999"):
        b.subgroups_for([10_000])
    with pytest.raises(CifarbError, match="unknown CIFAR-B dataset"):
        cifar_b.load_cifar_b("imagenet")
    with pytest.raises(ValueError):
        b.subgroups[0] = 1  # shared arrays are read-only


def test_check_official_labels_refuses_shuffled_copy():
    labels = cifar_b.official_test_labels("cifar10")[:100].copy()
    cifar_b.check_official_labels("cifar10", labels, np.arange(100), "x")  # a prefix is fine
    labels[[3, 7]] = labels[[7, 3]] if labels[3] != labels[7] else (labels[3] + 1) % 10
    with pytest.raises(CifarbError, match="shuffled or foreign"):
        cifar_b.check_official_labels("cifar10", labels, np.arange(100), "x")


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_join_equals_direct_lookup_in_original_dicts(shared_cifar_b, shared_data):
    """Every one of the 10,000 bundled subgroups equals the original dict's entry (both datasets)."""
    expected = {"cifar10": "af4afa68b58b0e2e3162ea79d0f4bf17c489c9541cfa1c6a05f45e2b83a26ea4",
                "cifar100": "df1ef46babfd46bb75a846f04f96378865580965ab77783b592928042ff7a491"}
    full = {"cifar10": np.load(shared_data / "cifar10_full_labels.npz")["test_labels"],
            "cifar100": np.load(shared_data / "cifar100_full_labels.npz")["test_fine_labels"]}
    for ds in ("cifar10", "cifar100"):
        path = shared_cifar_b / f"{ds}_bgd_cl2img_gp_fine.npy"
        assert _sha256(path) == expected[ds]  # checked before unpickling
        original = np.load(path, allow_pickle=True).item()
        b = cifar_b.load_cifar_b(ds)
        assert np.array_equal(b.labels, full[ds])
        seen: dict[int, int] = {}
        for i in range(10_000):
            y = int(full[ds][i])
            seen[y] = seen.get(y, 0) + 1
            assert b.subgroups[i] == original[b.class_names[y]][f"{seen[y]:04d}.png"]


def test_conversion_script_reproduces_the_bundled_files(shared_cifar_b, tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "convert_cifar_b.py"), "--shared", str(shared_cifar_b.parent),
         "--out", str(tmp_path / "assets"), "--licenses", str(tmp_path / "lic")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for name in ("cifar10_b.npz", "cifar100_b.npz"):
        assert (tmp_path / "assets" / name).read_bytes() == cifar_b.asset_path(name).read_bytes()
    assert (tmp_path / "lic" / "CIFAR-B-LICENSE.BSD-3").read_bytes() == (
        shared_cifar_b / "LICENSE.BSD-3").read_bytes()


def test_conversion_script_refuses_a_tampered_original(shared_cifar_b, tmp_path):
    fake = tmp_path / "shared"
    (fake / "cifar-b").mkdir(parents=True)
    (fake / "data").symlink_to(shared_cifar_b.parent / "data")
    (fake / "cifar-b" / "cifar10_bgd_cl2img_gp_fine.npy").write_bytes(b"not the original")
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "convert_cifar_b.py"), "--shared", str(fake),
         "--out", str(tmp_path / "assets"), "--licenses", str(tmp_path / "lic")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0 and "refusing to load" in out.stderr
    assert not (tmp_path / "assets" / "cifar10_b.npz").exists()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10_000), data=st.data())
def test_label_guard_accepts_prefixes_and_refuses_any_label_changing_swap(n, data):
    official = cifar_b.official_test_labels("cifar100" if n % 2 else "cifar10")
    ds = "cifar100" if n % 2 else "cifar10"
    labels = official[:n].copy()
    cifar_b.check_official_labels(ds, labels, np.arange(n), "prefix")
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1))
    labels[[i, j]] = labels[[j, i]]
    if labels[i] == labels[j]:
        # a swap within one class is invisible to labels; only checksums catch it (hence data_verified)
        cifar_b.check_official_labels(ds, labels, np.arange(n), "same labels")
    else:
        with pytest.raises(CifarbError, match="shuffled or foreign"):
            cifar_b.check_official_labels(ds, labels, np.arange(n), "swapped")
