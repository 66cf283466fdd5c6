"""Shared fixtures: paths to ../shared (skipped with a reason when absent) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CIFARB_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
SHARED_CIFAR_B = SHARED / "cifar-b"
SHARED_MODELS = SHARED / "models"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """Never touch the user's cache or network by accident: point caches at a temp dir."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CIFARB_CACHE", str(cache))
    monkeypatch.delenv("CIFARB_DATA", raising=False)
    monkeypatch.delenv("CIFARB_MODELS", raising=False)
    monkeypatch.delenv("CIFARB_OFFLINE", raising=False)
    # commands without --threads use one thread, as the suite always has: the default watches the
    # machine's load (cifarb._threads), and a count that follows the suite's own load would change bits
    monkeypatch.setenv("CIFARB_THREADS", os.environ.get("CIFARB_THREADS", "1"))


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "cifar-10-batches-py" / "test_batch").exists():
        pytest.skip(f"real data slice not found at {SHARED_DATA} (../shared is absent)")
    return SHARED_DATA


@pytest.fixture
def shared_cifar_b() -> Path:
    if not (SHARED_CIFAR_B / "cifar10_bgd_cl2img_gp_fine.npy").exists():
        pytest.skip(f"original CIFAR-B files not found at {SHARED_CIFAR_B} (../shared is absent)")
    return SHARED_CIFAR_B


@pytest.fixture
def shared_models() -> Path:
    if not (SHARED_MODELS / "resnet20-12fca82f.th").exists():
        pytest.skip(f"pretrained ResNet20 not found at {SHARED_MODELS} (../shared is absent)")
    return SHARED_MODELS


@pytest.fixture
def one_thread():
    """Tiny tensors: one torch thread avoids thread hand-off costs that dominate on a loaded 2-core machine.

    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`; torch is imported only then.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _check_border_colours(images, subgroups, names) -> None:
    """Each subgroup's mean border RGB agrees with its colour name (the real-image CIFAR-B join checks)."""
    import numpy as np

    img = images.astype(np.float64)
    n = len(img)
    border = np.concatenate([img[:, :2].reshape(n, -1, 3), img[:, -2:].reshape(n, -1, 3),
                             img[:, 2:-2, :2].reshape(n, -1, 3), img[:, 2:-2, -2:].reshape(n, -1, 3)],
                            axis=1).mean(axis=1)  # (n, 3) mean border RGB
    mean = {name: border[subgroups == g].mean(axis=0) for g, name in enumerate(names)}
    blueness = {k: v[2] - (v[0] + v[1]) / 2 for k, v in mean.items()}
    greenness = {k: v[1] - (v[0] + v[2]) / 2 for k, v in mean.items()}
    assert blueness["blue"] > blueness["green"] + 20
    assert greenness["green"] > greenness["blue"]
    assert mean["white"].mean() > mean["black"].mean() + 80
    assert mean["white"].mean() > mean["gray"].mean() > mean["black"].mean()
    assert mean["red"][0] > mean["red"][2] + 20  # red borders: more red than blue


@pytest.fixture
def check_border_colours():
    """The border-colour check shared by the CIFAR-10 and CIFAR-100 real-image tests."""
    return _check_border_colours
