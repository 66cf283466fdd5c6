"""Per-layer flow tests: exact inverses, log-determinants against brute-force Jacobians, ActNorm init, bits/dim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cifarb.flows.layers import (
    ActNorm,
    AffineCoupling,
    FlowStep,
    InvConv1x1LU,
    SplitPrior,
    Squeeze,
    TopPrior,
    bits_per_dim,
    dequantize,
    gaussian_log_prob,
    input_to_pixels,
    pixels_to_input,
    squeeze2d,
    unsqueeze2d,
)

pytestmark = pytest.mark.usefixtures("one_thread")

COND = 3


def _perturb(module: torch.nn.Module, scale: float = 0.2, seed: int = 0) -> torch.nn.Module:
    """Move every parameter off its (often zero / identity) initialisation so the tests are not trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


def _layers(c: int):
    """(name, layer, takes z) for every invertible layer, perturbed off identity."""
    g = torch.Generator().manual_seed(1)
    out = [
        ("actnorm", ActNorm(c), False),
        ("actnorm_cond", ActNorm(c, COND), True),
        ("invconv", InvConv1x1LU(c, g), False),
        ("coupling", AffineCoupling(c, 8), False),
        ("coupling_cond", AffineCoupling(c, 8, COND), True),
        ("step_cond", FlowStep(c, 8, COND, g), True),
        ("top_cond", TopPrior((c, 2, 2), COND), True),
    ]
    for _, layer, _ in out:
        for m in layer.modules():
            if isinstance(m, ActNorm):
                m.initialized.fill_(True)  # skip data init: we want random, not standardising, parameters
        _perturb(layer)
    return out


def _fwd(layer, x, h):
    out = layer(x, h)
    return out[0], out[-1]


@pytest.mark.parametrize("idx", range(7))
def test_inverse_of_forward_is_identity_fp32(idx):
    name, layer, cond = _layers(4)[idx]
    x = torch.randn(5, 4, 2, 2, generator=torch.Generator().manual_seed(2))
    h = torch.randn(5, COND) if cond else None
    y, logdet = _fwd(layer, x, h)
    assert logdet.shape == (5,)
    assert torch.allclose(layer.inverse(y, h), x, atol=1e-4), name
    assert not torch.allclose(y, x, atol=1e-3), f"{name} is (nearly) the identity: the test would be vacuous"


@pytest.mark.parametrize("idx", range(7))
def test_logdet_equals_bruteforce_jacobian(idx):
    name, layer, cond = _layers(4)[idx]
    layer = layer.double()
    x = torch.randn(1, 4, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    h = torch.randn(1, COND, dtype=torch.float64) if cond else None
    _, logdet = _fwd(layer, x, h)
    jac = torch.autograd.functional.jacobian(lambda v: _fwd(layer, v.view_as(x), h)[0].flatten(), x.flatten())
    sign, logabs = torch.linalg.slogdet(jac)
    assert sign != 0
    assert float(logdet[0].detach()) == pytest.approx(float(logabs), abs=1e-8), name


def test_split_prior_inverse_and_logdet():
    layer = _perturb(SplitPrior(4, COND)).double()
    x = torch.randn(1, 4, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    h = torch.randn(1, COND, dtype=torch.float64)
    x1, eps, logdet = layer(x, h)
    assert torch.allclose(layer.inverse(x1, eps, h), x, atol=1e-10)

    def f(v):  # x -> (kept half, eps): the full invertible map
        a, e, _ = layer(v.view_as(x), h)
        return torch.cat([a.flatten(), e.flatten()])

    jac = torch.autograd.functional.jacobian(f, x.flatten())
    assert float(logdet[0].detach()) == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-8)


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))
@settings(max_examples=25, deadline=None)
def test_squeeze_roundtrip_and_patch_layout(n, c, hh, ww):
    x = torch.randn(n, c, 2 * hh, 2 * ww)
    y = squeeze2d(x)
    assert y.shape == (n, 4 * c, hh, ww)
    assert torch.equal(unsqueeze2d(y), x)
    # Channel 4c'+2i+j of output pixel (a, b) is input pixel (2a+i, 2b+j) of channel c'.
    assert torch.equal(y[:, 4 * (c - 1) + 2 * 1 + 0, hh - 1, 0], x[:, c - 1, 2 * (hh - 1) + 1, 0])
    assert Squeeze()(x)[1].abs().sum() == 0


def test_actnorm_data_init_standardises_and_survives_constant_channels():
    x = torch.randn(64, 3, 4, 4) * torch.tensor([3.0, 0.5, 1.0]).view(1, 3, 1, 1) + 2.0
    x[:, 2] = 7.0  # a constant channel: std 0
    layer = ActNorm(3)
    y, logdet = layer(x)
    assert bool(layer.initialized)
    assert all(torch.isfinite(t).all() for t in (y, logdet, layer.bias, layer.logs))
    assert torch.allclose(y[:, :2].mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y[:, :2].std(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-4)
    assert torch.allclose(y[:, 2], torch.zeros_like(y[:, 2]))  # centred, scale 1
    assert float(layer.logs[0, 2].detach()) == 0.0
    assert torch.allclose(layer.inverse(y), x, atol=1e-5)
    # Initialisation happens once: a second, different batch does not re-standardise.
    bias = layer.bias.clone()
    layer(x * 10)
    assert torch.equal(layer.bias, bias)


def test_invconv_lu_weight_and_logdet_match_dense_determinant():
    layer = _perturb(InvConv1x1LU(6, torch.Generator().manual_seed(0))).requires_grad_(False)
    w = layer.weight().double()
    _, logabs = torch.linalg.slogdet(w)
    assert float(layer.log_s.sum()) == pytest.approx(float(logabs), abs=1e-5)
    _, logdet = layer(torch.randn(2, 6, 3, 5))
    assert float(logdet[0]) == pytest.approx(15 * float(logabs), rel=1e-5)


def test_coupling_scale_is_bounded_for_huge_network_outputs():
    layer = AffineCoupling(4, 8)
    with torch.no_grad():
        layer.net.conv3.weight.fill_(50.0)
    x = torch.randn(2, 4, 3, 3) * 100
    y, logdet = layer(x)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    assert (logdet <= 0).all()  # sigmoid scales are < 1


def test_gaussian_log_prob_matches_torch_distributions():
    x, m, s = torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.randn(3, 2, 4) * 0.3
    ref = torch.distributions.Normal(m, s.exp()).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(gaussian_log_prob(x, m, s), ref, atol=1e-5)


def test_bits_per_dim_known_cases():
    d = 3 * 32 * 32
    # The uniform density on [-0.5, 0.5)^D (log p = 0) is exactly 8 bits per 8-bit dimension.
    assert float(bits_per_dim(torch.tensor([0.0]), d)) == pytest.approx(8.0)
    # A density of 2^D on the data (log p = D ln 2) saves one bit per dimension.
    assert float(bits_per_dim(torch.tensor([d * math.log(2)]), d)) == pytest.approx(7.0)
    assert float(bits_per_dim(torch.tensor([0.0]), 10, n_bins=32)) == pytest.approx(5.0)


@given(st.integers(0, 2**31 - 1))
@example(17254)  # found by hypothesis: a draw within half an ulp of 1 rounded into the next pixel's bin
@settings(max_examples=20, deadline=None)
def test_dequantisation_stays_in_the_pixels_bin(seed):
    x = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (2, 3, 4, 4), dtype=np.uint8))
    y = dequantize(x, torch.Generator().manual_seed(seed))
    assert float(y.min()) >= -0.5 and float(y.max()) < 0.5
    assert torch.equal(input_to_pixels(y), x)
    assert torch.equal(input_to_pixels(pixels_to_input(x)), x)


def test_dequantisation_of_the_largest_draw_stays_in_the_pixels_bin(monkeypatch):
    # torch.rand's largest value, 1 - 2^-24, for every pixel: in float32 255 + u rounds up to 256
    x = torch.arange(256, dtype=torch.uint8)
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.full(tuple(shape), 1 - 2**-24))
    y = dequantize(x)
    assert float(y.max()) < 0.5
    assert torch.equal(input_to_pixels(y), x)
