#!/usr/bin/env python
"""Convert the CIFAR-10.1 repository's 90 model-prediction JSON files into one bundled, pickle-free .npz.

Usage: python scripts/convert_reference.py [--shared ../shared] [--out src/cifarb/reference/assets]

Input: `<shared>/cifar10.1-repo/model_predictions/{original,v4,v6}_predictions/<model>_predictions.json`
(30 models; MIT licence, github.com/modestyachts/CIFAR-10.1 at commit d9982abb). Output
`cifar10_reference.npz` holds, per model, uint8 predictions on the full CIFAR-10 test set
(`cifar10__<model>`, 10,000 in official order) and on CIFAR-10.1 v4/v6 (`v4__<model>`, `v6__<model>`),
the sha256 of every source file, and each model's CIFAR-10.1 accuracy with its Wilson 95 % interval.

The CIFAR-10.1 *labels* are under Tiny Images' terms, not MIT, so they are never written: they are
read here (after checking their git blob ids against checksums.md) only to compute the accuracies,
which are shipped as numbers. The output is byte-reproducible: rerunning leaves `git status` clean.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cifarb.data._npz import write_npz  # noqa: E402

FORMAT_VERSION = 1
SOURCE_COMMIT = "d9982abb"
SOURCE_URL = "https://github.com/modestyachts/CIFAR-10.1"
N_CIFAR10 = 10_000
# git blob ids of the CIFAR-10.1 label files (checksums.md, commit d9982abb) and their sizes
LABELS = {"v4": ("cifar10.1_v4_labels.npy", "64acdcc7ba98d0554f9c9fe00c5483d9247e61df", 2021),
          "v6": ("cifar10.1_v6_labels.npy", "e713b09cecf2ecd933970001909fcdec7c907ab0", 2000)}
SETS = {"cifar10": "original_predictions", "v4": "v4_predictions", "v6": "v6_predictions"}
SUFFIX = "_predictions.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_blob(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95 % interval of a binomial proportion k / n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def read_predictions(path: Path, n: int) -> np.ndarray:
    """The JSON list of class ids in `path`, checked: exactly `n` integers in 0..9."""
    values = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(values, list) or len(values) != n or not all(type(v) is int for v in values):
        sys.exit(f"error: {path}: expected a JSON list of {n} integer class ids")
    arr = np.asarray(values, dtype=np.int64)
    if arr.min() < 0 or arr.max() > 9:
        sys.exit(f"error: {path}: class ids outside 0..9")
    return arr.astype(np.uint8)


def convert(shared: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays of the bundled file and the model names (file stems, case preserved, sorted)."""
    repo = shared / "cifar10.1-repo"
    pred_dir = repo / "model_predictions"
    names = sorted(p.name[: -len(SUFFIX)] for p in (pred_dir / SETS["cifar10"]).glob(f"*{SUFFIX}"))
    if not names:
        sys.exit(f"error: no *{SUFFIX} files under {pred_dir / SETS['cifar10']}")
    for folder in SETS.values():
        found = sorted(p.name[: -len(SUFFIX)] for p in (pred_dir / folder).glob(f"*{SUFFIX}"))
        if found != names:
            sys.exit(f"error: {pred_dir / folder} holds other models than {SETS['cifar10']}: "
                     f"{sorted(set(found) ^ set(names))}")
    labels = {}
    for version, (fname, blob, size) in LABELS.items():
        path = repo / fname
        got = git_blob(path)
        if got != blob:
            sys.exit(f"error: {path} has git blob id {got}, expected {blob} (checksums.md); refusing to use it")
        arr = np.load(path, allow_pickle=False)
        assert arr.shape == (size,), (path, arr.shape)
        labels[version] = arr.astype(np.int64)

    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "names": np.array(names),
        "source_url": np.array(SOURCE_URL),
        "source_commit": np.array(SOURCE_COMMIT),
        "license_sha256": np.array(sha256(repo / "LICENSE.MIT")),
    }
    files, digests = [], []
    sizes = {"cifar10": N_CIFAR10, "v4": LABELS["v4"][2], "v6": LABELS["v6"][2]}
    correct: dict[str, list[int]] = {"v4": [], "v6": []}
    for name in names:
        for key, folder in SETS.items():
            path = pred_dir / folder / f"{name}{SUFFIX}"
            arrays[f"{key}__{name}"] = read_predictions(path, sizes[key])
            files.append(f"model_predictions/{folder}/{name}{SUFFIX}")
            digests.append(sha256(path))
            if key in correct:
                correct[key].append(int((arrays[f"{key}__{name}"] == labels[key]).sum()))
    arrays["source_files"] = np.array(files)
    arrays["source_sha256"] = np.array(digests)
    for version, (fname, blob, size) in LABELS.items():
        k = np.array(correct[version], dtype=np.int64)
        ci = np.array([wilson(int(x), size) for x in k])
        arrays[f"{version}_n"] = np.array(size)
        arrays[f"{version}_correct"] = k
        arrays[f"{version}_accuracy"] = k / size
        arrays[f"{version}_ci95"] = ci
        arrays[f"{version}_labels_file"] = np.array(fname)
        arrays[f"{version}_labels_gitblob"] = np.array(blob)
    return arrays, names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("CIFARB_SHARED", REPO.parent / "shared")))
    parser.add_argument("--out", type=Path, default=REPO / "src" / "cifarb" / "reference" / "assets")
    parser.add_argument("--licenses", type=Path, default=REPO / "src" / "cifarb" / "LICENSES")
    args = parser.parse_args(argv)
    arrays, names = convert(args.shared)
    args.out.mkdir(parents=True, exist_ok=True)
    out = write_npz(args.out / "cifar10_reference.npz", arrays)
    print(f"{out}: {len(names)} models, {out.stat().st_size} bytes, sha256 {sha256(out)}")
    args.licenses.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.shared / "cifar10.1-repo" / "LICENSE.MIT", args.licenses / "CIFAR-10.1-predictions-LICENSE.MIT")
    print(f"copied the MIT notice to {args.licenses / 'CIFAR-10.1-predictions-LICENSE.MIT'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
