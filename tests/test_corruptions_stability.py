"""Generator version 2 changes only what its fixes are meant to change; the per-image random streams stay.

tests/data/corruptions_v1_hashes.json holds the sha256 of every image that version 1 (before issue #15)
produced for a fixed seed. Corruptions the fixes do not touch must give those bytes; for the fixed ones,
undoing just the fix (the old rounding, clipping, factors, or the procedural frost) must give them back,
which shows that the random draws and everything else are unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from cifarb.data.corruptions import CORRUPTIONS, SEVERITY_PARAMS, _ops, _weather, apply, corrupt
from test_corruptions_core import natural_images

HASHES = json.loads((Path(__file__).parent / "data" / "corruptions_v1_hashes.json").read_text())["hashes"]
FIXED = {"zoom_blur", "spatter", "motion_blur", "snow", "frost"}
X = natural_images(8, seed=21)
IDX = np.arange(500, 508)
SEED = 3


def hashes(images: np.ndarray) -> list[str]:
    return [hashlib.sha256(im.tobytes()).hexdigest()[:16] for im in images]


@pytest.mark.parametrize("name", [n for n in CORRUPTIONS if n not in FIXED])
def test_untouched_corruptions_give_the_version_1_bytes(name):
    for s in range(1, 6):
        assert hashes(corrupt(X, name, s, SEED, IDX)) == HASHES[f"{name}/{s}"], (name, s)


def test_zoom_blur_changes_only_its_factors():
    for s in range(1, 6):
        factors = SEVERITY_PARAMS["zoom_blur"][s - 1]
        rounded = [round(f, 2) for f in factors]  # version 1's factors
        assert hashes(apply(X, "zoom_blur", rounded, SEED, IDX)) == HASHES[f"zoom_blur/{s}"]
    # the unrounded last factor of severity 5 makes scipy zoom the 26-px crop to 33 px: visibly other pixels
    new = corrupt(X, "zoom_blur", 5, SEED, IDX)
    assert hashes(new) != HASHES["zoom_blur/5"]


def test_spatter_changes_only_the_wrapped_values(monkeypatch):
    new = {s: corrupt(X, "spatter", s, SEED, IDX) for s in range(1, 6)}
    # version 1 clipped drop values above 1 (i.e. min(trunc(255 v), 255)) instead of wrapping them
    monkeypatch.setattr(_ops, "wrap_uint8", lambda v: np.minimum(np.trunc(v), 255).astype(np.uint8))
    for s in range(1, 6):
        old = corrupt(X, "spatter", s, SEED, IDX)
        assert hashes(old) == HASHES[f"spatter/{s}"]
        if s >= 4:  # mud has no uint8 cast: unchanged
            assert np.array_equal(old, new[s])


@pytest.mark.parametrize("name", ["motion_blur", "snow"])
def test_motion_blur_and_snow_change_only_their_rounding(name, monkeypatch):
    new = {s: corrupt(X, name, s, SEED, IDX) for s in range(1, 6)}
    # version 1 rounded the motion-blurred values with np.rint (snow kept them as float32 before the blend)
    old_dtype = np.uint8 if name == "motion_blur" else np.float32
    monkeypatch.setattr(_ops, "imagemagick_q16_to_uint8", lambda v: np.clip(np.rint(v), 0, 255).astype(old_dtype))
    for s in range(1, 6):
        old = corrupt(X, name, s, SEED, IDX)
        assert hashes(old) == HASHES[f"{name}/{s}"], (name, s)
        d = np.abs(old.astype(int) - new[s])
        assert d.max() <= (1 if name == "motion_blur" else 2)  # snow adds the layer and its 180-degree rotation


def test_frost_substitute_is_version_1_frost(monkeypatch):
    # the photographs replace the procedural plates (the intended change); the fallback is version 1's frost
    monkeypatch.setattr(_weather, "frost_photos", lambda: ((), "test"))
    for s in range(1, 6):
        with pytest.warns(UserWarning, match="PROCEDURAL SUBSTITUTE"):
            assert hashes(corrupt(X, "frost", s, SEED, IDX)) == HASHES[f"frost/{s}"]
