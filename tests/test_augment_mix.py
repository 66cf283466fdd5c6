"""mixup and cutmix: soft targets, pixel mixing consistent with the targets, the loss hook, determinism."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarb.augment import build_pipeline, soft_cross_entropy


def _mixed_pair(targets: torch.Tensor, labels: torch.Tensor):
    """Recover (lam, partner index) from a soft-target row when labels are all distinct."""
    out = []
    for i in range(len(labels)):
        row = targets[i]
        lam = float(row[labels[i]])
        others = [j for j in range(len(labels)) if j != i and row[labels[j]] > 0]
        out.append((lam, others[0] if others else i))
    return out


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), alpha=st.sampled_from([0.2, 1.0]))
def test_mixup_targets_and_pixels(seed, alpha):
    pipe = build_pipeline("mixup", num_classes=10, seed=seed, mixup_alpha=alpha)
    labels = torch.randperm(10, generator=torch.Generator().manual_seed(seed))
    x = torch.randn(10, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    xm, t = pipe.mix(x, labels, pipe.generator(epoch=0, step=0))
    assert t.shape == (10, 10) and t.dtype == torch.float32
    assert torch.allclose(t.sum(1), torch.ones(10))
    assert (t >= 0).all()
    lams = set()
    onehot = F.one_hot(labels, 10).float()
    for i, (lam, j) in enumerate(_mixed_pair(t, labels)):
        if j == i:  # paired with itself: the target stays one-hot
            assert torch.allclose(t[i], onehot[i]) and torch.allclose(xm[i], x[i], atol=1e-6)
            continue
        lams.add(round(lam, 5))
        assert torch.allclose(t[i], lam * onehot[i] + (1 - lam) * onehot[j], atol=1e-6)
        assert torch.allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-5)
    assert len(lams) <= 1  # one lam per batch: every image keeps weight lam on its own label


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_cutmix_lam_is_the_kept_area_fraction(seed):
    pipe = build_pipeline("cutmix", num_classes=10, seed=seed)
    labels = torch.arange(10)
    # every image constant with its own value, so each output pixel says where it came from
    x = labels.float().view(10, 1, 1, 1).expand(10, 3, 32, 32).contiguous()
    xm, t = pipe.mix(x, labels, pipe.generator(epoch=2, step=7))
    assert torch.allclose(t.sum(1), torch.ones(10))
    for i in range(10):
        kept = float((xm[i, 0] == i).float().mean())
        if kept < 1.0:
            j = int(xm[i, 0][xm[i, 0] != i][0])
            assert set(xm[i].unique().tolist()) == {float(i), float(j)}
            assert abs(float(t[i, j]) - (1 - kept)) < 1e-6
        assert abs(float(t[i, i]) - kept) < 1e-6 or kept == 1.0 and float(t[i, i]) == 1.0
    # the pasted region is one axis-aligned box, identical for all images
    box = xm[:, 0] != x[:, 0]
    rows, cols = box.any(0).any(1).nonzero(), box.any(0).any(0).nonzero()
    if len(rows):
        assert box.any(0)[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()


def test_mix_is_deterministic_and_changes_images():
    pipe = build_pipeline("standard+mixup+cutmix", num_classes=10, seed=1)
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(32) % 10
    a = pipe.prepare(images, labels, epoch=0, step=3)
    b = pipe.prepare(images, labels, epoch=0, step=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = pipe.prepare(images, labels, epoch=1, step=3)
    assert not torch.equal(a[0], c[0])
    # over many steps, both mixers get chosen (cutmix leaves pixels exactly equal to a source image)
    chosen = set()
    for step in range(20):
        x = torch.randn(8, 3, 32, 32)
        xm, _ = pipe.mix(x, torch.arange(8), pipe.generator(epoch=0, step=step))
        chosen.add("cutmix" if (xm == x).any() else "mixup")
    assert chosen == {"mixup", "cutmix"}


def test_soft_cross_entropy_matches_hard_and_smoothing():
    logits = torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    onehot = F.one_hot(y, 5).float()
    assert torch.allclose(soft_cross_entropy(logits, onehot), F.cross_entropy(logits, y))
    assert torch.allclose(
        soft_cross_entropy(logits, onehot, 0.2), F.cross_entropy(logits, y, label_smoothing=0.2), atol=1e-6
    )
    pipe = build_pipeline("mixup", num_classes=5, label_smoothing=0.1)
    assert torch.allclose(
        pipe.loss(logits, onehot), F.cross_entropy(logits, y, label_smoothing=0.1), atol=1e-6
    )
    hard = build_pipeline("standard", num_classes=5, label_smoothing=0.1)
    assert torch.allclose(hard.loss(logits, y), F.cross_entropy(logits, y, label_smoothing=0.1))
