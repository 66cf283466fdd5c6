"""cifarb's corruptions against the reference generator's own output on real CIFAR-10 test images.

tests/data/corruptions_reference.npz was produced by scripts/reference_cifar_c.py: the unmodified
make_cifar_c.py of hendrycks/robustness (plus the API patches the script lists), ImageMagick 6.9.11 Q16,
the reference's frost photographs, and a replay harness that hands the reference the random numbers cifarb
draws for each image. The images themselves are not committed: they come from ../shared (skipped when
absent). The tolerance per corruption is the table in docs/corruptions.md (checked to agree).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from cifarb.data.corruptions import CORRUPTIONS, corrupt

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "corruptions_reference.npz"

# corruption -> (largest allowed |difference| in grey levels, largest allowed fraction of differing values).
# Everything not listed must be bit-identical. The +-1 cases are float summation order (see the docs).
TOLERANCE: dict[str, tuple[int, float]] = {
    "zoom_blur": (1, 0.01),
    "gaussian_noise": (1, 0.0005),
    "speckle_noise": (1, 0.0005),
    "fog": (1, 0.0005),
}


def tolerance(name: str) -> tuple[int, float]:
    return TOLERANCE.get(name, (0, 0.0))


@pytest.fixture(scope="module")
def fixture_and_images():
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "cifar-10-batches-py" / "test_batch").exists():
        pytest.skip(f"real data slice not found at {SHARED_DATA} (../shared is absent)")
    from cifarb.data.corruptions._frost import frost_photos

    if not frost_photos()[0]:
        pytest.skip(f"the reference's frost photographs are not installed: {frost_photos()[1]}")
    from cifarb.data.readers import load_cifar

    ref = np.load(FIXTURE)
    meta = json.loads(str(ref["meta"]))
    idx = ref["indices"]
    images = load_cifar("cifar10", "test", root=SHARED_DATA, trust_local=True).images[idx]
    assert hashlib.sha256(images.tobytes()).hexdigest() == meta["images_sha256"]  # the same real images
    return ref, meta, idx, images


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_pixels_agree_with_the_reference(name, fixture_and_images):
    ref, meta, idx, images = fixture_and_images
    max_abs, max_fraction = tolerance(name)
    for s in range(1, 6):
        ours = corrupt(images, name, s, seed=meta["seed"], indices=idx)
        d = np.abs(ours.astype(int) - ref[name][s - 1])
        assert d.max() <= max_abs and (d > 0).mean() <= max_fraction, (name, s, int(d.max()), float((d > 0).mean()))


def test_the_fixture_records_how_it_was_made():
    ref = np.load(FIXTURE)
    meta = json.loads(str(ref["meta"]))
    assert "make_cifar_c.py" in meta["reference"] and "6.9.11" in meta["imagemagick"] and "Q16" in meta["imagemagick"]
    assert set(CORRUPTIONS) <= set(ref.files) and all(ref[n].shape == (5, len(ref["indices"]), 32, 32, 3) for n in CORRUPTIONS)
    assert len(meta["api_patches"]) >= 3


def test_docs_state_the_same_tolerances():
    text = (REPO / "docs" / "corruptions.md").read_text()
    start = text.index("| corruption | tolerance |", text.index("### Conformance with the reference"))
    table = text[start:text.index("\n\n", start)]
    rows = dict(re.findall(r"^\| (\w+) \| ([^|]+) \|", table, flags=re.M))
    for name in CORRUPTIONS:
        max_abs, max_fraction = tolerance(name)
        expected = "bit-identical" if max_abs == 0 else f"±{max_abs} on ≤ {max_fraction:.2%} of values"
        assert rows[name].strip() == expected, (name, rows.get(name))
