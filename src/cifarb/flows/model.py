"""A multi-scale Glow whose couplings, ActNorms and priors are conditioned on a global latent z from an encoder.

In the spirit of Ma et al., "Decoupling Global and Local Representations via Invertible Generative Flows"
(ICLR 2021): an encoder q(z|x) gives a low-dimensional global code z (image-wide appearance: colour,
background, lighting); the flow maps the image to its own standard-normal noise eps given z (the local
code, structure). The generative model is

    z ~ p(z) = N(m, diag(exp(2 s)))   (learned m, s)
    eps ~ N(0, I_D)
    y = f^{-1}(eps; z)                 (y: dequantised pixels in [-0.5, 0.5), D = 3*32*32)

and training maximises the ELBO of the dequantised image,

    log p(y) >= E_q(z|y)[ log N(f(y; z); 0, I) + log|det df/dy| ] - KL(q(z|y) || p(z)),

reported as bits/dim = (-ELBO + D log 256) / (D ln 2): an upper bound on the discrete negative
log-likelihood, so it is comparable to (and slightly pessimistic against) unconditional Glow figures.

Training may add a thumbnail term (FlowConfig.aux_weight): z must also explain a 4x4 average-pooled
copy of the image, -log N(thumb; W z + b, 0.05^2 I). Without it the flow, strong enough to model the
image alone, learns to ignore z (posterior collapse) and swapping z changes nothing; with it z carries
the colour layout, which the flow then uses. It is a regulariser only: reported bits/dim exclude it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from cifarb.flows.configs import FlowConfig
from cifarb.flows.layers import (
    LOG2,
    FlowStep,
    SplitPrior,
    TopPrior,
    bits_per_dim,
    dequantize,
    gaussian_log_prob,
    input_to_pixels,
    pixels_to_input,
    squeeze2d,
    unsqueeze2d,
)


class GlobalEncoder(nn.Module):
    """q(z|x): three strided convolutions to a 4x4 map, then a linear map to (mean, log-std).

    Flattening the 4x4 map (instead of global pooling) lets z tell the border from the centre.
    The head is *not* zero-initialised: the flow's z-inputs start at zero (so the untrained flow ignores
    z), and if z also started image-independent the pair would sit at a saddle where neither side gets
    a useful gradient, and the flow learns to model everything without z (posterior collapse). Starting
    z informative, with a posterior std of exp(-1), gives the flow a reason to read it from step one.
    """

    INIT_LOGS = -1.0

    def __init__(self, in_channels: int, width: int, z_dim: int, image_size: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
        )
        side = image_size // 8
        self.head = nn.Linear(2 * width * side * side, 2 * z_dim)
        with torch.no_grad():
            self.head.weight[z_dim:].zero_()  # log-std starts at INIT_LOGS for every image
            self.head.bias[:z_dim].zero_()
            self.head.bias[z_dim:].fill_(self.INIT_LOGS)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        mean, logs = self.head(self.convs(y).flatten(1)).chunk(2, dim=1)
        return mean, logs


class _Level(nn.Module):
    def __init__(self, channels: int, cfg: FlowConfig, last: bool, generator: torch.Generator):
        super().__init__()
        self.steps = nn.ModuleList(
            FlowStep(channels, cfg.hidden, cfg.z_dim, generator) for _ in range(cfg.steps)
        )
        self.split = None if last else SplitPrior(channels, cfg.z_dim)


class GlobalLocalFlow(nn.Module):
    """The z-conditioned multi-scale flow with its encoder and learned prior on z.

    Public API (images are uint8 NCHW tensors with values 0..255):
      encode(x) -> (z, eps)             z: (N, z_dim) posterior mean; eps: (N, D) standard-normal noise
      decode(z, eps) -> x               exact inverse of encode: decode(*encode(x)) == x
      sample(n, temperature) -> x
      bits_per_dim(x) -> (N,)           the ELBO bound in bits/dim (dequantisation noise and z sampled)
    """

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)  # the 1x1 convs' random rotations are reproducible
        self.encoder = GlobalEncoder(cfg.in_channels, cfg.enc_channels, cfg.z_dim, cfg.image_size)
        self.prior_mean = nn.Parameter(torch.zeros(cfg.z_dim))
        self.prior_logs = nn.Parameter(torch.zeros(cfg.z_dim))
        self.levels = nn.ModuleList()
        self.eps_shapes: list[tuple[int, int, int]] = []
        c, s = cfg.in_channels, cfg.image_size
        for i in range(cfg.levels):
            c, s = c * 4, s // 2
            last = i == cfg.levels - 1
            self.levels.append(_Level(c, cfg, last, gen))
            if not last:
                self.eps_shapes.append((c // 2, s, s))
                c = c - c // 2
        self.eps_shapes.append((c, s, s))
        self.top = TopPrior((c, s, s), cfg.z_dim)
        self.n_dims = cfg.in_channels * cfg.image_size * cfg.image_size
        # Training-only thumbnail head (see FlowConfig.aux_weight); not part of the likelihood.
        self.aux = nn.Linear(cfg.z_dim, cfg.in_channels * cfg.aux_size**2) if cfg.aux_weight > 0 else None

    # --- the flow given z ------------------------------------------------------------------------------
    def flow_forward(self, y: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """y -> (eps flattened to (N, D), log|det d eps / d y|)."""
        x = y
        logdet = y.new_zeros(y.shape[0])
        parts = []
        for level in self.levels:
            x = squeeze2d(x)
            for step in level.steps:
                x, ld = step(x, z)
                logdet = logdet + ld
            if level.split is not None:
                x, eps, ld = level.split(x, z)
                parts.append(eps.flatten(1))
                logdet = logdet + ld
        eps, ld = self.top(x, z)
        parts.append(eps.flatten(1))
        return torch.cat(parts, dim=1), logdet + ld

    def flow_inverse(self, eps: Tensor, z: Tensor) -> Tensor:
        """(eps (N, D), z) -> y."""
        n = eps.shape[0]
        sizes = [c * h * w for c, h, w in self.eps_shapes]
        chunks = [e.reshape(n, *shape) for e, shape in zip(eps.split(sizes, dim=1), self.eps_shapes)]
        x = self.top.inverse(chunks[-1], z)
        for i in range(len(self.levels) - 1, -1, -1):
            level = self.levels[i]
            if level.split is not None:
                x = level.split.inverse(x, chunks[i], z)
            for step in reversed(level.steps):
                x = step.inverse(x, z)
            x = unsqueeze2d(x)
        return x

    # --- global latent ---------------------------------------------------------------------------------
    def posterior(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-std of q(z|y)."""
        return self.encoder(y)

    def sample_z(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """z ~ p(z) with its standard deviation scaled by `temperature`."""
        noise = torch.randn(n, self.cfg.z_dim, generator=generator, device=self.prior_mean.device)
        return self.prior_mean + temperature * torch.exp(self.prior_logs) * noise

    def kl(self, mean: Tensor, logs: Tensor) -> Tensor:
        """KL(N(mean, exp(logs)^2) || p(z)) per dimension, shape (N, z_dim)."""
        pm, pl = self.prior_mean, self.prior_logs
        return pl - logs + 0.5 * (torch.exp(2 * logs) + (mean - pm) ** 2) * torch.exp(-2 * pl) - 0.5

    # --- likelihood ------------------------------------------------------------------------------------
    def loss_terms(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        kl_weight: float = 1.0,
        free_bits: float = 0.0,
    ) -> dict[str, Tensor]:
        """One-sample ELBO terms for uint8 images x: per-image `bpd` (the bound) and `kl_bpd`, and the
        scalar training `loss` (bits/dim; with kl_weight/free_bits applied to the KL part only)."""
        y = dequantize(x, generator, self.cfg.n_bins)
        mean, logs = self.posterior(y)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(logs) * noise
        eps, logdet = self.flow_forward(y, z)
        log_px_z = gaussian_log_prob(eps) + logdet
        kl_dims = self.kl(mean, logs)
        kl = kl_dims.sum(1)
        d = self.n_dims
        bpd = bits_per_dim(log_px_z - kl, d, self.cfg.n_bins)
        # Free bits: each z dimension's batch-mean KL below the threshold costs nothing (fights collapse).
        kl_train = torch.clamp(kl_dims.mean(0), min=free_bits).sum() if free_bits > 0 else kl.mean()
        nats = -log_px_z.mean() + kl_weight * kl_train
        out = {"bpd": bpd, "kl_bpd": kl / (d * LOG2)}
        if self.aux is not None:
            cfg = self.cfg
            thumb = F.avg_pool2d(y, cfg.image_size // cfg.aux_size).flatten(1)
            aux_nats = 0.5 * ((self.aux(z) - thumb) / cfg.aux_std).pow(2).sum(1)
            out["aux_bpd"] = aux_nats / (d * LOG2)
            nats = nats + cfg.aux_weight * aux_nats.mean()
        out["loss"] = nats / (d * LOG2) + self.cfg.n_bits
        return out

    def bits_per_dim(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Per-image bits/dim bound (one sample of dequantisation noise and of z ~ q(z|x))."""
        return self.loss_terms(x, generator)["bpd"]

    # --- encode / decode / sample ------------------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 images -> (z, eps): z the posterior mean (global), eps the flow's noise given z (local)."""
        y = pixels_to_input(x, self.cfg.n_bins)
        z, _ = self.posterior(y)
        eps, _ = self.flow_forward(y, z)
        return z, eps

    def decode(self, z: Tensor, eps: Tensor) -> Tensor:
        """(z, eps) -> uint8 images; with a different z the same eps keeps the structure, changes the look."""
        return input_to_pixels(self.flow_inverse(eps, z), self.cfg.n_bins)

    def decode_checked(self, z: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """decode() plus, per image, the fraction of values that fell outside the pixel range (or were not
        finite) before clipping: a (z, eps) pair far from the training data can blow up in the inverse."""
        y = self.flow_inverse(eps, z)
        bad = ~torch.isfinite(y) | (y < -0.5) | (y >= 0.5)
        y = torch.nan_to_num(y, nan=0.0, posinf=0.5, neginf=-0.5)
        return input_to_pixels(y, self.cfg.n_bins), bad.flatten(1).float().mean(1)

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """n new images: z ~ p(z) and eps ~ N(0, I), both with standard deviations scaled by `temperature`."""
        z = self.sample_z(n, temperature, generator)
        eps = temperature * torch.randn(n, self.n_dims, generator=generator, device=z.device)
        return self.decode(z, eps)

    @torch.no_grad()
    def initialize(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent ActNorm initialisation from one batch of uint8 images (a no-op once done)."""
        y = dequantize(x, generator, self.cfg.n_bins)
        z, _ = self.posterior(y)
        self.flow_forward(y, z)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def standard_normal_bpd_reference(n_bits: int = 8) -> float:
    """bits/dim of the best Gaussian fit to per-dimension uniform noise: 8 + 0.5*log2(2*pi*e/12) ~= 8.2546.

    An untrained flow (ActNorm standardises each channel, couplings start near identity) should land
    close to this on uniform-noise images; a perfect model would reach exactly n_bits.
    """
    return n_bits + 0.5 * math.log2(2 * math.pi * math.e / 12.0)


__all__ = ["GlobalLocalFlow", "GlobalEncoder", "count_parameters", "standard_normal_bpd_reference"]
