"""Batched uint8 augmentations (standard crop+flip, cutout, none) against a pad-then-slice reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarb.augment import build_pipeline
from cifarb.augment.batch import crop_flip, cutout


def _images(n: int, seed: int = 0, shape=(3, 32, 32)) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def _reference_crop_flip(images, seed, padding, pad_mode):
    """Independent reference: draw the same numbers, pad with F.pad, slice the window, flip."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape
    dy = torch.randint(-padding, padding + 1, (n,), generator=g)
    dx = torch.randint(-padding, padding + 1, (n,), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    mode = "constant" if pad_mode == "zero" else "reflect"
    padded = F.pad(images.float(), (padding,) * 4, mode=mode)
    out = []
    for i in range(n):
        y0, x0 = padding + int(dy[i]), padding + int(dx[i])
        win = padded[i, :, y0 : y0 + h, x0 : x0 + w]
        out.append(win.flip(-1) if flips[i] else win)
    return torch.stack(out).to(torch.uint8)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), padding=st.integers(0, 6), pad_mode=st.sampled_from(["zero", "reflect"]))
def test_crop_flip_matches_pad_and_slice_reference(seed, padding, pad_mode):
    images = _images(16, seed % 1000, shape=(3, 12, 10))
    got = crop_flip(images, torch.Generator().manual_seed(seed), padding=padding, pad_mode=pad_mode)
    assert got.dtype == torch.uint8 and got.shape == images.shape
    assert torch.equal(got, _reference_crop_flip(images, seed, padding, pad_mode))


def test_standard_changes_images_preserves_labels_and_is_deterministic():
    pipe = build_pipeline("standard", num_classes=10, seed=3)
    images, labels = _images(64), torch.arange(64) % 10
    out, lab = pipe.batch(images, labels, pipe.generator(epoch=0, step=0))
    assert torch.equal(lab, labels)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    changed = (out != images).flatten(1).any(1)
    assert changed.float().mean() > 0.9  # only the (dy, dx, flip) = (0, 0, no) draw leaves an image intact
    again, _ = pipe.batch(images, labels, pipe.generator(epoch=0, step=0))
    assert torch.equal(out, again)
    other, _ = pipe.batch(images, labels, pipe.generator(epoch=0, step=1))
    assert not torch.equal(out, other)


def test_crop_flip_applies_the_same_window_to_every_view():
    base = _images(8)
    views = torch.stack([base, 255 - base, base // 2], dim=1)  # (N, V, C, H, W)
    got = crop_flip(views, torch.Generator().manual_seed(5), padding=4, pad_mode="reflect")
    ref = _reference_crop_flip(base, 5, 4, "reflect")
    assert torch.equal(got[:, 0], ref)
    assert torch.equal(got[:, 1], 255 - ref)
    assert torch.equal(got[:, 2], ref // 2)


def test_cutout_square_size_position_and_fill():
    images = torch.full((200, 3, 32, 32), 7, dtype=torch.uint8)
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8)
    got = cutout(images, torch.Generator().manual_seed(0), size=16, fill=fill)
    g = torch.Generator().manual_seed(0)
    cy = torch.randint(0, 32, (200,), generator=g)
    cx = torch.randint(0, 32, (200,), generator=g)
    for i in range(200):
        y0, y1 = max(int(cy[i]) - 8, 0), min(int(cy[i]) + 8, 32)
        x0, x1 = max(int(cx[i]) - 8, 0), min(int(cx[i]) + 8, 32)
        expect = images[i].clone()
        expect[:, y0:y1, x0:x1] = fill.view(3, 1, 1)
        assert torch.equal(got[i], expect)
    areas = (got[:, 0] == 1).flatten(1).sum(1)
    assert areas.max() == 256 and areas.min() >= 64  # a corner centre keeps a quarter of the square


def test_cutout_pipeline_defaults_follow_devries():
    c10 = build_pipeline("standard+cutout", num_classes=10)
    c100 = build_pipeline("cutout+standard", num_classes=100, mean=(0.0, 0.5, 1.0))
    assert [p.name for p in c100.batch_pieces] == ["standard", "cutout"]  # crop first whatever the order
    assert c10.config()["pieces"][1]["cutout_size"] == 16
    assert c100.config()["pieces"][0]["cutout_size"] == 8
    assert c100.config()["pieces"][0]["cutout_fill"] == [0, 128, 255]  # the mean colour (0 once normalised)
    images = _images(32)
    out, _ = c10.batch(images, torch.zeros(32, dtype=torch.int64), c10.generator(epoch=1, step=0))
    assert ((out == torch.tensor([125, 123, 114], dtype=torch.uint8).view(1, 3, 1, 1)).all(1)).flatten(1).sum(
        1
    ).min() >= 64


def test_none_is_identity():
    pipe = build_pipeline("none", num_classes=10)
    images, labels = _images(4), torch.arange(4)
    x, t = pipe.prepare(images, labels, epoch=0, step=0)
    mean = torch.tensor(pipe.mean).view(1, 3, 1, 1)
    std = torch.tensor(pipe.std).view(1, 3, 1, 1)
    assert torch.allclose(x, (images.float() / 255 - mean) / std, atol=1e-5)
    assert torch.equal(t, labels)


@pytest.mark.parametrize("bad", [{"crop_pad_mode": "wrap"}, {"crop_padding": -1}])
def test_bad_crop_options(bad):
    from cifarb.errors import CifarbError

    with pytest.raises(CifarbError):
        build_pipeline("standard", num_classes=10, **bad)
