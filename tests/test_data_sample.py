"""The bundled demo sample: 1,017 real test images, integrity-checked, equal to ../shared's slice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cifarb.data import cifar_b, sample
from cifarb.data.readers import load_cifar
from cifarb.errors import CifarbError

REPO = Path(__file__).resolve().parents[1]


def test_demo_sample_loads_offline_with_official_labels():
    s = sample.load_demo_sample()
    assert s.images.shape == (1017, 32, 32, 3) and s.images.dtype == np.uint8
    assert np.array_equal(s.indices, np.arange(1017)) and s.n_official == 10_000 and s.n_images == 1017
    assert np.array_equal(s.labels, cifar_b.official_test_labels("cifar10")[:1017])
    assert s.verified is False  # honest: not checkable against the published full-set checksums
    assert cifar_b.asset_path("demo_sample.npz").stat().st_size <= 4 * 1024 * 1024
    with np.load(cifar_b.asset_path("demo_sample.npz"), allow_pickle=False) as z:
        assert set(z.files) == {"images", "labels", "indices"}


def test_demo_sample_equals_the_real_slice(shared_data):
    s = sample.load_demo_sample()
    real = load_cifar("cifar10", "test", root=shared_data, trust_local=True)
    assert np.array_equal(s.images, real.images) and np.array_equal(s.labels, real.labels)


def test_altered_sample_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "assets"
    fake.mkdir()
    (fake / "demo_sample.json").write_bytes(cifar_b.asset_path("demo_sample.json").read_bytes())
    data = bytearray(cifar_b.asset_path("demo_sample.npz").read_bytes())
    data[-100] ^= 1
    (fake / "demo_sample.npz").write_bytes(bytes(data))
    monkeypatch.setattr(cifar_b, "asset_path", lambda name: fake / name)
    with pytest.raises(CifarbError, match="demo_sample.npz has sha256 .* expected .*reinstall"):
        sample.load_demo_sample()


def test_script_reproduces_the_bundled_sample(shared_data, tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_sample.py"),
                          "--shared", str(shared_data.parent), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("demo_sample.npz", "demo_sample.json"):
        assert (tmp_path / name).read_bytes() == cifar_b.asset_path(name).read_bytes()
