"""Whole-model flow tests: inverse, brute-force log-det, encode/decode, KL, bits/dim on uniform noise, configs."""

from __future__ import annotations

import math

import pytest
import torch

from cifarb.errors import CifarbError
from cifarb.flows.configs import PRESETS, FlowConfig, load_config, preset
from cifarb.flows.layers import gaussian_log_prob, pixels_to_input
from cifarb.flows.model import GlobalLocalFlow, standard_normal_bpd_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def _perturbed(cfg: FlowConfig, seed: int = 0, scale: float = 0.05) -> GlobalLocalFlow:
    torch.manual_seed(seed)
    model = GlobalLocalFlow(cfg)
    model.initialize(torch.randint(0, 256, (32, cfg.in_channels, cfg.image_size, cfg.image_size), dtype=torch.uint8))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


def test_whole_model_inverse_of_forward_fp32():
    model = _perturbed(preset("tiny"))
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = pixels_to_input(x)
    z = torch.randn(6, model.cfg.z_dim)
    with torch.no_grad():
        eps, _ = model.flow_forward(y, z)
        assert eps.shape == (6, 3 * 32 * 32)
        assert torch.allclose(model.flow_inverse(eps, z), y, atol=1e-4)
        # z really conditions the flow: another z gives other noise for the same image.
        assert not torch.allclose(model.flow_forward(y, z + 1)[0], eps, atol=1e-3)


def test_whole_model_logdet_equals_bruteforce_jacobian_float64():
    cfg = preset("tiny").replace(image_size=8, hidden=6, z_dim=3, enc_channels=4)
    model = _perturbed(cfg, scale=0.1).double()
    y = (torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) - 0.5)
    z = torch.randn(1, 3, dtype=torch.float64)
    _, logdet = model.flow_forward(y, z)
    jac = torch.autograd.functional.jacobian(lambda v: model.flow_forward(v.view_as(y), z)[0].flatten(), y.flatten())
    assert jac.shape == (192, 192)
    assert float(logdet[0].detach()) == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-7)


def test_encode_decode_is_exact_on_pixels():
    model = _perturbed(preset("tiny"))
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z, eps = model.encode(x)
        assert z.shape == (8, model.cfg.z_dim)
        assert torch.equal(model.decode(z, eps), x)
        other = model.decode(z.roll(1, 0), eps)
    assert other.dtype == torch.uint8 and other.shape == x.shape
    assert not torch.equal(other, x)


def test_untrained_flow_on_uniform_noise_is_close_to_8_bits():
    """Uniform 8-bit noise has entropy exactly 8 bits/dim. An untrained flow is a per-channel Gaussian
    fit (data-initialised ActNorm, near-identity couplings), which costs 0.5*log2(2*pi*e/12) = 0.2546
    bits more; the KL of the untrained encoder's q(z|x) (std exp(-1)) adds ~0.6 nats per z dimension."""
    torch.manual_seed(0)
    model = GlobalLocalFlow(preset("tiny"))
    x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        model.initialize(x)
        out = model.loss_terms(x, torch.Generator().manual_seed(0))
    bpd, kl = float(out["bpd"].mean()), float(out["kl_bpd"].mean())
    assert 0 < kl < 0.005
    assert bpd > 8.0
    assert bpd - kl == pytest.approx(standard_normal_bpd_reference(), abs=0.04)
    assert standard_normal_bpd_reference() == pytest.approx(8.2546, abs=1e-4)


def test_bpd_is_the_elbo_computed_independently():
    model = _perturbed(preset("tiny"))
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        bpd = model.bits_per_dim(x, torch.Generator().manual_seed(9))
        # Recompute by hand with the same random stream: dequantisation noise first, then z noise.
        g = torch.Generator().manual_seed(9)
        y = (x.float() + torch.rand(x.shape, generator=g)) / 256 - 0.5
        mean, logs = model.posterior(y)
        z = mean + logs.exp() * torch.randn(mean.shape, generator=g)
        eps, logdet = model.flow_forward(y, z)
        q = torch.distributions.Normal(mean, logs.exp())
        p = torch.distributions.Normal(model.prior_mean, model.prior_logs.exp())
        kl = torch.distributions.kl_divergence(q, p).sum(1)
        nll = -(gaussian_log_prob(eps) + logdet) + kl
        ref = (nll / 3072 + torch.log(torch.tensor(256.0))) / torch.log(torch.tensor(2.0))
    assert torch.allclose(bpd, ref, atol=1e-4)


def test_training_loss_is_the_bound_plus_the_thumbnail_term():
    model = _perturbed(preset("tiny"))
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        out = model.loss_terms(x, torch.Generator().manual_seed(1))
        # The thumbnail term by hand: z explains the 4x4 average-pooled image under N(aux(z), 0.05^2).
        g = torch.Generator().manual_seed(1)
        y = (x.float() + torch.rand(x.shape, generator=g)) / 256 - 0.5
        mean, logs = model.posterior(y)
        z = mean + logs.exp() * torch.randn(mean.shape, generator=g)
        thumb = y.reshape(4, 3, 4, 8, 4, 8).mean(dim=(3, 5)).flatten(1)
        aux_nats = 0.5 * (((model.aux(z) - thumb) / 0.05) ** 2).sum(1)
    assert torch.allclose(out["aux_bpd"], aux_nats / (3072 * math.log(2)), rtol=1e-5)
    assert float(out["loss"]) == pytest.approx(float((out["bpd"] + out["aux_bpd"]).mean()), abs=1e-5)
    assert model.cfg.aux_weight == 1.0


def test_sampling_is_seeded_and_in_range():
    model = _perturbed(preset("tiny"))
    with torch.no_grad():
        a = model.sample(5, 0.7, torch.Generator().manual_seed(1))
        b = model.sample(5, 0.7, torch.Generator().manual_seed(1))
        c = model.sample(5, 0.7, torch.Generator().manual_seed(2))
    assert a.dtype == torch.uint8 and a.shape == (5, 3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_few_steps_of_training_lower_the_bpd_of_structured_images():
    torch.manual_seed(0)
    cfg = preset("tiny").replace(image_size=16)
    model = GlobalLocalFlow(cfg)
    # Smooth images with a random global colour: very compressible, so a few steps must help a lot.
    colour = torch.randint(30, 220, (32, 3, 1, 1))
    ramp = torch.linspace(-20, 20, 16).view(1, 1, 1, 16)
    x = (colour + ramp + torch.zeros(1, 1, 16, 1)).clamp(0, 255).to(torch.uint8)
    model.initialize(x)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    start = float(model.bits_per_dim(x, torch.Generator().manual_seed(0)).mean().detach())
    for _ in range(30):
        loss = model.loss_terms(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = float(model.bits_per_dim(x, torch.Generator().manual_seed(0)).mean().detach())
    assert end < start - 1.0


def test_presets_and_toml_configs(tmp_path):
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.name == name and cfg.image_size % 2**cfg.levels == 0
    f = tmp_path / "mine.toml"
    f.write_text('base = "tiny"\nhidden = 24\nlr = 3e-4\n')
    cfg = load_config(f)
    assert (cfg.name, cfg.hidden, cfg.lr, cfg.levels) == ("mine", 24, 3e-4, preset("tiny").levels)
    f.write_text('[flow]\nlevels = 2\nsteps = 1\nhidden = 4\n')
    assert load_config(f).steps == 1
    for bad, needle in [('hiden = 3\n', "unknown flow config key 'hiden'"),
                        ('hidden = "wide"\n', "must be a int"),
                        ('levels = 6\n', "divisible"),
                        ('base = "huge"\n', "base must be one of"),
                        ('hidden = [\n', "not valid TOML"),
                        ('lr = -1.0\n', "lr must be positive")]:
        f.write_text(bad)
        with pytest.raises(CifarbError, match=needle.replace("[", r"\[")):
            load_config(f)
    with pytest.raises(CifarbError, match="no such preset or file"):
        load_config(tmp_path / "missing.toml")


def test_decode_checked_reports_the_clipped_fraction():
    model = _perturbed(preset("tiny"))
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        z, eps = model.encode(x)
        same, clip = model.decode_checked(z, eps)
        assert torch.equal(same, x) and float(clip.max()) == 0.0
        y = model.flow_inverse(eps * 40, z)
        big, clip = model.decode_checked(z, eps * 40)
    ref = ((y < -0.5) | (y >= 0.5) | ~torch.isfinite(y)).flatten(1).float().mean(1)
    assert torch.allclose(clip, ref) and float(clip.min()) > 0.2
    assert big.dtype == torch.uint8
