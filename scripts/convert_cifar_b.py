#!/usr/bin/env python
"""Convert the original CIFAR10-B / CIFAR100-B pickled dicts into the bundled pickle-free .npz files.

Usage: python scripts/convert_cifar_b.py [--shared ../shared] [--out src/cifarb/data/assets]

Every input's sha256 is checked against the published value *before* anything is unpickled (the
originals are pickles: loading an unchecked one could run code). The output is keyed by official test
index (index, label, subgroup; plus coarse_label for CIFAR-100), records the originals' sha256, and is
byte-reproducible, so rerunning this script must leave `git status` clean.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cifarb.data._npz import read_npz, write_npz  # noqa: E402
from cifarb.data._safepickle import load_pickle_file  # noqa: E402

# sha256 of the inputs, as published in ../shared/README.md.
EXPECTED_SHA256 = {
    "cifar-b/cifar10_bgd_cl2img_gp_fine.npy": "af4afa68b58b0e2e3162ea79d0f4bf17c489c9541cfa1c6a05f45e2b83a26ea4",
    "cifar-b/cifar100_bgd_cl2img_gp_fine.npy": "df1ef46babfd46bb75a846f04f96378865580965ab77783b592928042ff7a491",
    "data/cifar10_full_labels.npz": "54918567a42fbe6decc4114d1c2d1d746051d1a0f6acc162b4129933be9e9d83",
    "data/cifar100_full_labels.npz": "4cff7c46eaf8fbfe8337dcb5d63e6b9878dc35721f61cad45c48dc9bde5079b6",
    "data/cifar-10-batches-py/batches.meta": "f962466ef690d46b226450fb9aadc74ba4bc64a76aa526b5827fe4bc5c7125cb",
    "data/cifar-100-meta": "a5d4786345c961390f865e93b434dbd5c6904ce880667e0cb888c97d449f28b9",
}
N_TEST = 10_000
FORMAT_VERSION = 1


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checked(shared: Path, rel: str) -> Path:
    """The path of input `rel`, after checking its sha256 (exit on mismatch: never unpickle it)."""
    path = shared / rel
    got = sha256(path)
    if got != EXPECTED_SHA256[rel]:
        sys.exit(f"error: {path} has sha256 {got}, expected {EXPECTED_SHA256[rel]}; refusing to load it")
    return path


def subgroups_by_index(cl2img: dict, labels: np.ndarray, names: list[str], what: str) -> np.ndarray:
    """Subgroup of each test index: key '%04d.png' is the 1-based running index within the class."""
    counts = np.zeros(len(names), dtype=np.int64)
    out = np.full(labels.shape, -1, dtype=np.int64)
    for i, y in enumerate(labels):
        counts[y] += 1
        out[i] = cl2img[names[y]][f"{counts[y]:04d}.png"]
    # The join must be a bijection: every key of every class used exactly once, ids in 0..7.
    if set(cl2img) != set(names):
        sys.exit(f"error: {what}: class names differ from the official ones")
    for c, name in enumerate(names):
        if len(cl2img[name]) != counts[c]:
            sys.exit(f"error: {what}: class {name} has {len(cl2img[name])} keys but {counts[c]} test images")
    if out.min() < 0 or out.max() > 7:
        sys.exit(f"error: {what}: subgroup ids outside 0..7")
    return out


def load_original(path: Path) -> dict:
    # sha256 already checked by `checked`; the file is a 0-d object array holding a dict.
    return np.load(path, allow_pickle=True).item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("CIFARB_SHARED", REPO.parent / "shared")))
    parser.add_argument("--out", type=Path, default=REPO / "src" / "cifarb" / "data" / "assets")
    parser.add_argument("--licenses", type=Path, default=REPO / "src" / "cifarb" / "LICENSES")
    args = parser.parse_args(argv)
    shared: Path = args.shared

    meta10 = load_pickle_file(checked(shared, "data/cifar-10-batches-py/batches.meta"), "bad input")
    meta100 = load_pickle_file(checked(shared, "data/cifar-100-meta"), "bad input")
    names10 = [str(n) for n in meta10["label_names"]]
    fine100 = [str(n) for n in meta100["fine_label_names"]]
    coarse100 = [str(n) for n in meta100["coarse_label_names"]]
    lab10 = read_npz(checked(shared, "data/cifar10_full_labels.npz"))["test_labels"].astype(np.int64)
    z100 = read_npz(checked(shared, "data/cifar100_full_labels.npz"))
    fine = z100["test_fine_labels"].astype(np.int64)
    coarse = z100["test_coarse_labels"].astype(np.int64)
    assert lab10.shape == fine.shape == coarse.shape == (N_TEST,)

    common = {"index": np.arange(N_TEST, dtype=np.int32), "format_version": np.array(FORMAT_VERSION)}
    jobs = [
        ("cifar10", "cifar-b/cifar10_bgd_cl2img_gp_fine.npy", lab10, names10, "data/cifar10_full_labels.npz",
         "data/cifar-10-batches-py/batches.meta", {}),
        ("cifar100", "cifar-b/cifar100_bgd_cl2img_gp_fine.npy", fine, fine100, "data/cifar100_full_labels.npz",
         "data/cifar-100-meta",
         {"coarse_label": coarse.astype(np.int16), "coarse_class_names": np.array(coarse100)}),
    ]
    for ds, rel, labels, names, labels_rel, meta_rel, extra in jobs:
        src = checked(shared, rel)
        subgroups = subgroups_by_index(load_original(src), labels, names, rel)
        arrays = {
            **common,
            "label": labels.astype(np.int16),
            "subgroup": subgroups.astype(np.int8),
            **extra,
            "class_names": np.array(names),
            "source_file": np.array(Path(rel).name),
            "source_sha256": np.array(EXPECTED_SHA256[rel]),
            "labels_file": np.array(Path(labels_rel).name),
            "labels_sha256": np.array(EXPECTED_SHA256[labels_rel]),
            "meta_file": np.array(Path(meta_rel).name),
            "meta_sha256": np.array(EXPECTED_SHA256[meta_rel]),
        }
        out = write_npz(args.out / f"{ds}_b.npz", arrays)
        counts = np.bincount(subgroups, minlength=8)
        print(f"{out}: {out.stat().st_size} bytes, sha256 {sha256(out)}, subgroup counts {counts.tolist()}")

    args.licenses.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / "cifar-b" / "LICENSE.BSD-3", args.licenses / "CIFAR-B-LICENSE.BSD-3")
    print(f"copied the BSD-3 notice to {args.licenses / 'CIFAR-B-LICENSE.BSD-3'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
