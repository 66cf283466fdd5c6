"""Sources registry and checksum verification: entries equal checksums.md; OK/MISMATCH/MISSING; the record."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from cifarb.data import registry, verify
from cifarb.data.registry import CIFAR_C_CORRUPTIONS, get_source
from cifarb.errors import CifarbError

REPO = Path(__file__).resolve().parents[1]
CHECKSUMS_MD = Path(os.environ.get("CIFARB_SHARED", REPO.parent / "shared")) / "checksums.md"


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split(" ", 1)[0].strip(): p for p in parts[1:]}


def _pairs(section: str, hexlen: int) -> dict[str, str]:
    """file name -> first hex digest of that length after it (table cells or `name` hex prose)."""
    pat = rf"`?([A-Za-z0-9_.]+)`?\s*\|?\s*`?([0-9a-f]{{{hexlen}}})\b"
    return {name: hexd for name, hexd in re.findall(pat, section) if not re.fullmatch(r"[0-9a-f]+", name)}


@pytest.fixture
def checksums_md() -> str:
    if not CHECKSUMS_MD.exists():
        pytest.skip(f"{CHECKSUMS_MD} not found (../shared is absent)")
    return CHECKSUMS_MD.read_text()


def test_registry_equals_checksums_md(checksums_md):
    sec = _sections(checksums_md)
    cases = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "cifar10-c": "CIFAR-10-C", "cifar100-c": "CIFAR-100-C"}
    for name, title in cases.items():
        source = get_source(name)
        published = _pairs(sec[title], 32)
        tar_md5 = re.search(r"tar(?:ball)? md5 `([0-9a-f]{32})`", sec[title]).group(1)
        assert source.archive is not None and source.archive.digest == tar_md5 and source.archive.algo == "md5"
        ours = {f.relpath.rsplit("/", 1)[1]: f.digest for f in source.files}
        assert all(f.algo == "md5" for f in source.files)
        assert ours == {k: v for k, v in published.items() if k in ours}
        assert set(ours) == {k for k in published if k != "md5"}, name  # nothing left out, nothing invented
    for name in ("cifar10-c", "cifar100-c"):
        files = [f.relpath.rsplit("/", 1)[1] for f in get_source(name).files]
        assert files == [f"{c}.npy" for c in CIFAR_C_CORRUPTIONS] + ["labels.npy"] and len(files) == 20
    assert get_source("cifar100-c").archive.size == 2_918_473_216
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in sec["CIFAR-10.1"].splitlines()
            if line.startswith("| cifar10.1_")]
    blobs = {r[0]: r[1] for r in rows}
    sha = {r[0]: r[2] for r in rows if re.fullmatch(r"[0-9a-f]{64}", r[2])}
    assert len(blobs) == 4 and len(sha) == 2
    for version in ("v6", "v4"):
        source = get_source("cifar10.1", version=version)
        for f in source.files:
            fname = f.relpath.rsplit("/", 1)[1]
            assert f.algo == "gitblob" and f.digest == blobs[fname]
            assert dict(f.extra).get("sha256") == sha.get(fname)
    assert get_source("cifar10.1").version == "v6"


def test_every_source_has_licence_citation_and_urls():
    for key, source in registry.SOURCES.items():
        assert source.license and "@" in source.citation and "title" in source.citation, key
        for f in source.files:
            assert f.url.startswith("https://") and f.relpath.startswith(source.folder + "/")
    assert get_source("cifar10-c").archive.mirrors  # Zenodo's /records/ form
    assert all(f.mirrors for f in get_source("cifar10.1").files)  # raw.githubusercontent.com


def test_unknown_names_and_versions_are_clear_errors():
    with pytest.raises(CifarbError, match="unknown dataset name 'imagenet'.*cifar10, cifar100"):
        get_source("imagenet")
    with pytest.raises(CifarbError, match="v6 .*or v4"):
        get_source("cifar10.1", version="v5")
    with pytest.raises(CifarbError, match="cifar10.1 only"):
        get_source("cifar10", version="v4")
    assert get_source("CIFAR10.1-v4").version == "v4"


def test_builders_take_a_base_url_without_touching_the_real_entries():
    local = registry.cifar_c_source("cifar10-c", base_url="http://127.0.0.1:1")
    assert local.archive.url == "http://127.0.0.1:1/CIFAR-10-C.tar" and not local.archive.mirrors
    assert get_source("cifar10-c").archive.url.startswith("https://zenodo.org/")
    assert local.files[0].digest == get_source("cifar10-c").files[0].digest


def test_verify_statuses_with_the_real_batches_meta(shared_data, tmp_path):
    """The real batches.meta matches the published md5; a modified copy does not; absent files are MISSING."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    shutil.copyfile(shared_data / "cifar-10-batches-py" / "batches.meta", folder / "batches.meta")
    shutil.copyfile(shared_data / "cifar-10-batches-py" / "test_batch", folder / "test_batch")
    checks = {c.relpath.rsplit("/", 1)[1]: c for c in verify.verify_source(get_source("cifar10"), tmp_path)}
    assert checks["batches.meta"].status == "OK" and "as published" in checks["batches.meta"].how
    assert checks["test_batch"].status == "MISMATCH"  # the 1,017-image prefix is not the official file
    assert checks["data_batch_1"].status == "MISSING"
    assert checks["batches.meta"].line() == f"OK {folder / 'batches.meta'}"


def test_the_verified_download_record_verifies_files(tmp_path):
    f = tmp_path / "CIFAR-10.1" / "extra.npy"
    f.parent.mkdir()
    f.write_bytes(b"abc")
    assert verify.check_local(tmp_path, "CIFAR-10.1/extra.npy").status == "MISMATCH"
    verify.write_record(tmp_path, {"CIFAR-10.1/extra.npy": {"sha256": verify.sha256_of(f), "size": 3}})
    check = verify.check_local(tmp_path, "CIFAR-10.1/extra.npy")
    assert check.ok and verify.RECORD_NAME in check.how
    f.write_bytes(b"abd")  # changed after recording -> no longer verified
    assert verify.check_local(tmp_path, "CIFAR-10.1/extra.npy").status == "MISMATCH"
    (tmp_path / verify.RECORD_NAME).write_text("{not json")
    assert verify.read_record(tmp_path) == {}  # a damaged record verifies nothing, and breaks nothing


def test_digests_in_one_pass_match_hashlib(tmp_path):
    import hashlib

    f = tmp_path / "x"
    f.write_bytes(b"hello\n" * 1000)
    d = verify.digests(f, ("md5", "sha256", "gitblob"))
    assert d["md5"] == hashlib.md5(f.read_bytes()).hexdigest()
    assert d["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert d["gitblob"] == hashlib.sha1(b"blob 6000\0" + f.read_bytes()).hexdigest()
