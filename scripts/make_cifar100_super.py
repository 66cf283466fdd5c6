#!/usr/bin/env python
"""Write the bundled CIFAR-100 superclass mapping (fine class -> coarse class) as pickle-free JSON.

Usage: python scripts/make_cifar100_super.py [--shared ../shared] [--out src/cifarb/data/assets]

Inputs: the official CIFAR-100 `meta` (fine and coarse label names) and the official test labels
(`cifar100_full_labels.npz`), both sha256-checked before reading. Every fine class must map to exactly
one coarse class over the 10,000 test images (the official hierarchy: 20 superclasses x 5 classes).
The output is byte-reproducible, so rerunning this script must leave `git status` clean.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cifarb.data._safepickle import load_pickle_file  # noqa: E402

INPUTS = {  # sha256 as published in ../shared/README.md
    "data/cifar-100-meta": "a5d4786345c961390f865e93b434dbd5c6904ce880667e0cb888c97d449f28b9",
    "data/cifar100_full_labels.npz": "4cff7c46eaf8fbfe8337dcb5d63e6b9878dc35721f61cad45c48dc9bde5079b6",
}
OUT_NAME = "cifar100_super.json"


def build(shared: Path) -> dict:
    for rel, want in INPUTS.items():
        got = hashlib.sha256((shared / rel).read_bytes()).hexdigest()
        if got != want:
            sys.exit(f"error: {shared / rel} has sha256 {got}, expected {want}; refusing to read it")
    meta = load_pickle_file(shared / "data/cifar-100-meta", "use the official CIFAR-100 meta")
    fine_names = [str(s) for s in meta["fine_label_names"]]
    coarse_names = [str(s) for s in meta["coarse_label_names"]]
    with np.load(shared / "data/cifar100_full_labels.npz", allow_pickle=False) as z:
        fine, coarse = z["test_fine_labels"].astype(np.int64), z["test_coarse_labels"].astype(np.int64)
    fine_to_coarse = []
    for f in range(len(fine_names)):
        parents = np.unique(coarse[fine == f])
        if parents.size != 1:
            sys.exit(f"error: fine class {fine_names[f]} has coarse labels {parents.tolist()}; expected one")
        fine_to_coarse.append(int(parents[0]))
    counts = np.bincount(fine_to_coarse, minlength=len(coarse_names))
    if len(fine_names) != 100 or len(coarse_names) != 20 or not (counts == 5).all():
        sys.exit(f"error: expected 100 fine classes, 5 in each of 20 superclasses; got {counts.tolist()}")
    return {
        "format": "cifarb-cifar100-super",
        "format_version": 1,
        "about": "CIFAR-100 superclass hierarchy: fine_to_coarse[f] is the coarse (superclass) id of fine class f",
        "coarse_class_names": coarse_names,
        "fine_class_names": fine_names,
        "fine_to_coarse": fine_to_coarse,
        "source_sha256": {Path(rel).name: sha for rel, sha in INPUTS.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "src/cifarb/data/assets")
    args = ap.parse_args()
    text = json.dumps(build(args.shared), indent=1) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / OUT_NAME).write_text(text, encoding="utf-8")
    print(f"wrote {args.out / OUT_NAME}")


if __name__ == "__main__":
    main()
