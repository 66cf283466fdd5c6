"""Frost from the reference's photographs (installed imagecorruptions package), and the explicit fallback."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json

import cv2
import numpy as np
import pytest

from cifarb.data.corruptions import SEVERITY_PARAMS, _frost, _weather, corrupt, image_rngs, make_c
from test_corruptions_core import natural_images
from test_corruptions_makec import image_set

# (height, width) of frost1..5 after the reference's cv2.resize(fx = fy = 0.2)
PHOTO_SHAPES = [(120, 180), (63, 112), (63, 112), (70, 105), (99, 132)]


@pytest.fixture
def photos():
    found, why = _frost.frost_photos()
    if not found:
        pytest.skip(f"the reference's frost photographs are not installed: {why}")
    return found


@pytest.fixture
def no_photos(monkeypatch, tmp_path):
    """The photographs' folder holds a tampered frost3.png: frost must refuse it and fall back."""
    real = _frost.photo_folder()
    for name in _frost.PHOTO_SHA256:
        good = real / name if real is not None else None
        data = good.read_bytes() if good is not None and good.is_file() and name != "frost3.png" else b"not it"
        (tmp_path / name).write_bytes(data)
    monkeypatch.setattr(_frost, "photo_folder", lambda: tmp_path)
    _frost.frost_photos.cache_clear()
    yield tmp_path
    _frost.frost_photos.cache_clear()


def test_photos_are_located_without_importing_the_package_and_checked(photos):
    import sys

    assert "imagecorruptions" not in sys.modules  # found via importlib.util.find_spec, never imported
    folder = _frost.photo_folder()
    for name, digest in _frost.PHOTO_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert [p.shape for p in photos] == [(*s, 3) for s in PHOTO_SHAPES]
    assert all(p.dtype == np.uint8 for p in photos)


def test_frost_is_the_reference_procedure_with_cifarb_draws(photos):
    # make_cifar_c.py's frost, written out independently: photo randint(5), cv2.imread + resize 0.2,
    # corner randint(0, H - 32), randint(0, W - 32), BGR -> RGB, c0 * x + c1 * crop, clip, np.uint8
    x = natural_images(6, seed=4)
    folder = _frost.photo_folder()
    files = sorted(_frost.PHOTO_SHA256)
    for s in (1, 3, 5):
        c0, c1 = SEVERITY_PARAMS["frost"][s - 1]
        expected = []
        for img, g in zip(x, image_rngs(9, "frost", s, range(100, 106))):
            photo = cv2.resize(cv2.imread(str(folder / files[g.integers(5)])), (0, 0), fx=0.2, fy=0.2)
            top, left = g.integers(0, photo.shape[0] - 32), g.integers(0, photo.shape[1] - 32)
            crop = photo[top:top + 32, left:left + 32][..., [2, 1, 0]]
            expected.append(np.uint8(np.clip(c0 * img + c1 * crop, 0, 255)))
        assert np.array_equal(corrupt(x, "frost", s, seed=9, indices=np.arange(100, 106)), np.stack(expected))


def test_make_c_records_the_photographs(tmp_path, photos):
    target = make_c(image_set(3), tmp_path / "gen", dataset="cifar10", corruptions=["frost"], severities=[2],
                    progress=False)
    marker = json.loads((target / ".cifarb-local.json").read_text())
    assert marker["frost_substitute"] is False
    assert marker["frost_photos"]["sha256"] == _frost.PHOTO_SHA256
    assert "photographs" in marker["implementation_notes"]["frost"]
    assert "substitute" not in marker["description"]


def test_without_the_photographs_frost_falls_back_loudly(no_photos, tmp_path, capsys):
    found, why = _frost.frost_photos()
    assert found == () and "sha256" in why and "pip install" in why
    if (no_photos / "frost1.png").stat().st_size > 100:
        assert "frost3.png" in why  # the good photographs were accepted, the tampered one named
    x = natural_images(4, seed=1)
    with pytest.warns(UserWarning, match="PROCEDURAL SUBSTITUTE"):
        out = corrupt(x, "frost", 3, seed=2)
    rngs = image_rngs(2, "frost", 3, range(4))
    assert np.array_equal(out, _weather.frost_substitute(x, SEVERITY_PARAMS["frost"][2], rngs, 2))
    with pytest.warns(UserWarning):
        target = make_c(image_set(3), tmp_path / "gen", dataset="cifar10", corruptions=["frost", "fog"],
                        severities=[1], progress=False)
    assert "PROCEDURAL SUBSTITUTE" in capsys.readouterr().err
    marker = json.loads((target / ".cifarb-local.json").read_text())
    assert marker["frost_substitute"] is True and marker["frost_photos"] is None
    assert "PROCEDURAL SUBSTITUTE" in marker["implementation_notes"]["frost"]
    assert "substitute" in marker["description"]


def test_a_set_without_frost_is_not_a_substitute(no_photos, tmp_path):
    target = make_c(image_set(2), tmp_path / "g", dataset="cifar10", corruptions=["fog"], severities=[1],
                    progress=False)
    assert json.loads((target / ".cifarb-local.json").read_text())["frost_substitute"] is False


def test_one_opencv_provides_cv2():
    # imagecorruptions requires opencv-python, cifarb uses opencv-python-headless; both install `cv2`, and
    # having both makes `import cv2` depend on install order (and breaks when either is removed). cifarb's
    # one provider is opencv-python-headless; install imagecorruptions with --no-deps.
    providers = []
    for dist in ("opencv-python-headless", "opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless"):
        try:
            providers.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            pass
    assert len(providers) == 1, (
        f"several OpenCV distributions install cv2: {providers}; keep opencv-python-headless only "
        f"(pip uninstall the others, then pip install --force-reinstall opencv-python-headless; "
        f"install imagecorruptions with: pip install --no-deps imagecorruptions)"
    )
    assert cv2.__version__.split(".")[0] == providers[0][1].split(".")[0]
    img = np.zeros((8, 8, 3), np.uint8)
    assert cv2.resize(img, (0, 0), fx=0.5, fy=0.5).shape == (4, 4, 3)
    assert cv2.imdecode(cv2.imencode(".png", img)[1], cv2.IMREAD_UNCHANGED).shape == (8, 8, 3)
