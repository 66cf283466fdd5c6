"""Per-sample policies (autoaugment, randaugment, trivialaugment, augmix): shapes, change, keyed determinism, JSD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cifarb.augment import build_pipeline, jsd_loss

POLICIES = ["autoaugment", "randaugment", "trivialaugment", "augmix"]


def _images(n: int = 24) -> torch.Tensor:
    # smooth random images: policies such as posterize/equalize act visibly on them
    g = torch.Generator().manual_seed(0)
    low = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8).float()
    return F.interpolate(low, size=32, mode="bilinear", align_corners=False).round().to(torch.uint8)


@pytest.mark.parametrize("name", POLICIES)
def test_policy_shapes_change_and_determinism(name):
    pipe = build_pipeline(name, num_classes=10, seed=11, augmix_jsd=False)
    images = _images()
    assert pipe.has_sample_stage and pipe.views == 1
    out = torch.stack([pipe.sample(img, epoch=0, index=i) for i, img in enumerate(images)])
    assert out.dtype == torch.uint8 and out.shape == images.shape
    changed = (out != images).flatten(1).any(1).float().mean()
    assert changed > 0.5, f"{name} left {1 - changed:.0%} of images untouched"
    # keyed by (seed, epoch, index): independent of the global RNG and of call order
    torch.manual_seed(12345)
    state = torch.get_rng_state()
    again = torch.stack(
        [pipe.sample(images[i], epoch=0, index=i) for i in reversed(range(len(images)))]
    ).flip(0)
    assert torch.equal(out, again)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    next_epoch = torch.stack([pipe.sample(img, epoch=1, index=i) for i, img in enumerate(images)])
    assert not torch.equal(out, next_epoch)
    other_seed = build_pipeline(name, num_classes=10, seed=12, augmix_jsd=False)
    assert not torch.equal(
        out, torch.stack([other_seed.sample(img, epoch=0, index=i) for i, img in enumerate(images)])
    )


def test_autoaugment_uses_the_cifar10_policy():
    pipe = build_pipeline("autoaugment", num_classes=10)
    from torchvision.transforms import v2

    assert pipe.sample_pieces[0].transform.policy == v2.AutoAugmentPolicy.CIFAR10


def test_augmix_jsd_views_prepare_and_loss():
    pipe = build_pipeline("standard+augmix", num_classes=10, seed=2)
    assert pipe.views == 3
    images, labels = _images(6), torch.arange(6)
    ds = pipe.dataset(images, labels)
    item, lab = ds[4]
    assert item.shape == (3, 3, 32, 32) and item.dtype == torch.uint8 and int(lab) == 4
    assert torch.equal(item[0], images[4])  # view 0 is the clean image
    assert not torch.equal(item[1], item[2])  # two independent AugMix chains
    batch = torch.stack([ds[i][0] for i in range(6)])
    x, t = pipe.prepare(batch, labels, epoch=0, step=0)
    assert x.shape == (18, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(t, labels)
    # view-major rows: rows [:6] are the clean views after crop/flip, which keeps the value multiset
    clean = (x[:6] * torch.tensor(pipe.std).view(1, 3, 1, 1) + torch.tensor(pipe.mean).view(1, 3, 1, 1)) * 255
    for i in range(6):
        assert set(clean[i].round().unique().tolist()) <= set(images[i].float().unique().tolist()) | {0.0}
    logits = torch.randn(18, 10)
    expected = F.cross_entropy(logits[:6], labels) + jsd_loss(logits[:6], logits[6:12], logits[12:])
    assert torch.allclose(pipe.loss(logits, t), expected)
    with pytest.raises(ValueError):
        pipe.loss(logits[:6], t)


def test_jsd_loss_matches_an_independent_numpy_computation():
    rng = np.random.default_rng(0)
    zs = [rng.normal(size=(5, 4)) for _ in range(3)]
    ps = [np.exp(z) / np.exp(z).sum(1, keepdims=True) for z in zs]
    m = np.clip(sum(ps) / 3, 1e-7, 1)
    js = np.mean([np.sum(p * (np.log(p) - np.log(m)), axis=1) for p in ps], axis=0).mean()
    got = jsd_loss(*(torch.tensor(z, dtype=torch.float32) for z in zs))
    assert abs(float(got) - 12 * js) < 1e-4
    same = torch.randn(5, 4)
    assert float(jsd_loss(same, same, same)) < 1e-6
    assert float(jsd_loss(*(torch.tensor(z) for z in zs), weight=1.0)) == pytest.approx(js, rel=1e-5)


def test_augmix_without_jsd_is_single_view_and_jsd_blocks_mixing():
    from cifarb.errors import CifarbError

    plain = build_pipeline("augmix", num_classes=10, augmix_jsd=False)
    assert plain.views == 1 and plain.sample(_images(1)[0], epoch=0, index=0).shape == (3, 32, 32)
    with pytest.raises(CifarbError, match="augmix_jsd"):
        build_pipeline("augmix+mixup", num_classes=10)
    assert build_pipeline("augmix+mixup", num_classes=10, augmix_jsd=False).views == 1
