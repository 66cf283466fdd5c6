"""The bundled demo sample: the first 1,017 real CIFAR-10 test images, usable fully offline.

The images are pixel-identical to the official test prefix. `verified` is False because the slice cannot
be checked against the published checksums of the full test set (docs/data.md: `data_verified` is true only
for files matching those); instead every load checks the bundled file against its recorded sha256 and
its labels against the official test labels, so its CIFAR10-B subgroups are exact.
"""

from __future__ import annotations

import json

import numpy as np

from cifarb.data import cifar_b
from cifarb.data._npz import read_npz
from cifarb.data.readers import ImageSet
from cifarb.data.verify import sha256_of
from cifarb.errors import CifarbError

SAMPLE_FILE = "demo_sample.npz"
SAMPLE_META = "demo_sample.json"


def load_demo_sample() -> ImageSet:
    """The 1,017 bundled CIFAR-10 test images (official indices 0..1016), NHWC uint8, int64 labels."""
    path = cifar_b.asset_path(SAMPLE_FILE)
    meta_path = cifar_b.asset_path(SAMPLE_META)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        expected = str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CifarbError(f"bundled {meta_path} is missing or damaged ({exc}); reinstall cifarb") from None
    try:
        got = sha256_of(path)
    except OSError:
        raise CifarbError(f"bundled demo sample {path} is missing; reinstall cifarb") from None
    if got != expected:
        raise CifarbError(f"bundled demo sample {path} has sha256 {got}, expected {expected} "
                          f"(recorded in {meta_path}); reinstall cifarb")
    z = read_npz(path, what="bundled demo sample")
    images, labels, indices = z["images"], z["labels"].astype(np.int64), z["indices"].astype(np.int64)
    if images.dtype != np.uint8 or images.shape != (labels.shape[0], 32, 32, 3) or indices.shape != labels.shape:
        raise CifarbError(f"bundled demo sample {path} has unexpected shapes; reinstall cifarb")
    cifar_b.check_official_labels("cifar10", labels, indices, path)
    return ImageSet(
        images=images, labels=labels, indices=indices, class_names=cifar_b.class_names("cifar10"),
        n_official=cifar_b.N_TEST, verified=False, files={str(path): got}, name="cifar10-test-sample",
    )
