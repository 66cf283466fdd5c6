#!/usr/bin/env python
"""Bundle the 1,017 real CIFAR-10 test images of ../shared/data as the offline demo sample.

Usage: python scripts/make_demo_sample.py [--shared ../shared] [--out src/cifarb/data/assets]

The input's sha256 is checked before it is read; its labels are checked against the official test
labels (it must be the official prefix, so its CIFAR10-B subgroups are exact). Writes a pickle-free,
byte-reproducible `demo_sample.npz` (images uint8 NHWC, labels, official indices) and `demo_sample.json`
(the npz's sha256 and provenance), which `cifarb.data.sample.load_demo_sample` checks on every load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cifarb._atomic import atomic_write_text  # noqa: E402
from cifarb.data import cifar_b  # noqa: E402
from cifarb.data._npz import write_npz  # noqa: E402
from cifarb.data.readers import _read_batch  # noqa: E402

SOURCE = "data/cifar-10-batches-py/test_batch"
SOURCE_SHA256 = "98fbd9f1baeee32a3d27856d1aa409fe42e88742870fe236f584595900649b4b"  # ../shared/README.md
MAX_BYTES = 4 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("CIFARB_SHARED", REPO.parent / "shared")))
    parser.add_argument("--out", type=Path, default=REPO / "src" / "cifarb" / "data" / "assets")
    args = parser.parse_args(argv)

    src = args.shared / SOURCE
    got = hashlib.sha256(src.read_bytes()).hexdigest()
    if got != SOURCE_SHA256:
        sys.exit(f"error: {src} has sha256 {got}, expected {SOURCE_SHA256}; refusing to load it")
    images, labels, _ = _read_batch(src, "cifar10", "cifar10", args.shared / "data", max_n=10_000)
    indices = np.arange(labels.shape[0], dtype=np.int64)
    cifar_b.check_official_labels("cifar10", labels, indices, src)  # exits with a CifarbError if not a prefix

    npz = write_npz(args.out / "demo_sample.npz", {
        "images": images, "labels": labels.astype(np.int16), "indices": indices.astype(np.int32),
    })
    size = npz.stat().st_size
    if size > MAX_BYTES:
        npz.unlink()
        sys.exit(f"error: the sample would take {size} bytes, over the {MAX_BYTES}-byte budget")
    meta = {
        "file": npz.name,
        "sha256": hashlib.sha256(npz.read_bytes()).hexdigest(),
        "n_images": int(labels.shape[0]),
        "n_official": 10_000,
        "indices": f"official CIFAR-10 test indices 0..{labels.shape[0] - 1} (a prefix of the test set)",
        "source_file": "cifar-10-batches-py/test_batch (first 1,017 official test images, pixel-identical)",
        "source_sha256": SOURCE_SHA256,
        "data_verified": False,
        "why_unverified": "the slice cannot be checked against the published checksums of the full test set; "
                          "its integrity is checked against this sha256 and its labels against the official ones",
    }
    atomic_write_text(args.out / "demo_sample.json", json.dumps(meta, indent=2) + "\n")
    print(f"{npz}: {size} bytes, {labels.shape[0]} images, sha256 {meta['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
