"""The globality measure (border vs centre colour change under z swaps) against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifarb.flows.analysis import derangement, globality, mean_colours, region_masks


def test_region_masks():
    frame, mid = region_masks(32)
    assert frame.sum() == 32 * 32 - 24 * 24 and mid.sum() == 256
    assert not (frame & mid).any()
    assert frame[0, 0] and frame[3, 16] and not frame[4, 16] and mid[8, 8] and mid[23, 23] and not mid[7, 8]


def test_globality_matches_a_loop_computation():
    rng = np.random.default_rng(0)
    n = 50
    orig = rng.integers(40, 200, (n, 32, 32, 3)).astype(np.uint8)
    frame, mid = region_masks(32)
    shift_b = rng.integers(-30, 30, (n, 3))
    shift_c = rng.integers(-10, 10, (n, 3))
    swapped = orig.astype(np.int64)
    swapped[:, frame, :] += shift_b[:, None, :]
    swapped[:, mid, :] += shift_c[:, None, :]
    swapped = swapped.astype(np.uint8)
    res = globality(orig, swapped, orig, bootstrap=500, seed=1)
    cb = [np.linalg.norm([swapped[i][frame][:, c].mean() - orig[i][frame][:, c].mean() for c in range(3)])
          for i in range(n)]
    cc = [np.linalg.norm([swapped[i][mid][:, c].mean() - orig[i][mid][:, c].mean() for c in range(3)])
          for i in range(n)]
    assert res.border_change == pytest.approx(np.mean(cb)) and res.centre_change == pytest.approx(np.mean(cc))
    assert res.ratio == pytest.approx(np.mean(cb) / np.mean(cc))
    assert res.ratio_ci95[0] < res.ratio < res.ratio_ci95[1]
    assert res.frac_border_larger == pytest.approx(np.mean(np.array(cb) > np.array(cc)))
    assert res.n_images == n
    again = globality(orig, swapped, orig, bootstrap=500, seed=1)
    assert again.ratio_ci95 == res.ratio_ci95


def test_transfer_share():
    rng = np.random.default_rng(1)
    orig = rng.integers(0, 200, (20, 32, 32, 3)).astype(np.float64)
    donor = rng.integers(0, 200, (20, 32, 32, 3)).astype(np.float64)
    half = np.round(orig + 0.5 * (donor - orig))
    res = globality(orig.astype(np.uint8), half.astype(np.uint8), donor.astype(np.uint8), bootstrap=10)
    assert res.border_transfer == pytest.approx(0.5, abs=0.01) and res.centre_transfer == pytest.approx(0.5, abs=0.01)
    frame, _ = region_masks(32)
    assert np.allclose(mean_colours(orig.astype(np.uint8), frame)[0], orig[0][frame].mean(0))


def test_derangement_has_no_fixed_points():
    for seed in range(20):
        p = derangement(7, torch.Generator().manual_seed(seed))
        assert sorted(p.tolist()) == list(range(7)) and all(p[i] != i for i in range(7))


def test_swap_experiment_decodes_each_image_with_its_donors_z():
    from cifarb.flows.analysis import swap_experiment
    from cifarb.flows.configs import preset
    from cifarb.flows.model import GlobalLocalFlow

    torch.manual_seed(0)
    model = GlobalLocalFlow(preset("tiny").replace(hidden=8, steps=1))
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model.initialize(x)
    original, swapped, donor, clip = swap_experiment(model.eval(), x, seed=3)
    perm = derangement(6, torch.Generator().manual_seed(3))
    with torch.no_grad():
        z, eps = model.encode(x)
        ref = model.decode(z[perm], eps).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(original, x.permute(0, 2, 3, 1).numpy()) and np.array_equal(swapped, ref)
    assert np.array_equal(donor, original[perm.numpy()]) and clip.shape == (6,)
