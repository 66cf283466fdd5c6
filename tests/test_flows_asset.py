"""The committed `small` flow (docs/assets/flow_small.pt): loads, round-trips real images, and models them well."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ASSET = Path(__file__).resolve().parents[1] / "docs" / "assets" / "flow_small.pt"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def small_flow():
    if not ASSET.exists():
        pytest.skip(f"{ASSET} is not in this checkout")
    from cifarb.flows.checkpoint import load_flow

    return load_flow(ASSET)


def test_asset_is_small_and_records_its_training(small_flow):
    assert ASSET.stat().st_size <= 20 * 2**20
    assert small_flow.config.name == "small" and small_flow.meta["epoch"] == 24
    assert small_flow.meta["dataset"] == "cifar10" and small_flow.meta["test_bpd"] < 4.0


def test_asset_on_real_test_images(small_flow, shared_data):
    from cifarb.data.readers import load_cifar

    test = load_cifar("cifar10", "test", shared_data, trust_local=True)
    x = torch.from_numpy(test.images[:64]).permute(0, 3, 1, 2).contiguous()
    model = small_flow.model
    with torch.no_grad():
        z, eps = model.encode(x)
        assert torch.equal(model.decode(z, eps), x)
        bpd = model.bits_per_dim(x, torch.Generator().manual_seed(0))
    # The logged full-test figure is 3.907; 64 images scatter around it.
    assert 3.5 < float(bpd.mean()) < 4.3
