"""Invertible building blocks of the Glow-style flow: each maps x -> (y, log|det dy/dx|) and back.

Every layer takes an optional conditioning vector `h` (N, cond_dim), the global latent z, so one
interface serves the unconditional and the z-conditioned flow. Log-determinants are per sample (N,).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LOG2 = math.log(2.0)


# --- pixels <-> flow input ---------------------------------------------------------------------------
_U_GRID = 65536.0  # 2^16: see dequantize


def dequantize(x: Tensor, generator: torch.Generator | None = None, n_bins: int = 256) -> Tensor:
    """Uniform dequantisation: uint8 pixels -> (x + u) / n_bins - 0.5 with u ~ U[0, 1), in [-0.5, 0.5).

    u is cut to a 2^-16 grid: with a full float32 u, x + u rounds up to x + 1 for u within half an ulp of 1
    (hypothesis found such a draw), moving the value into the next pixel's bin. On the grid every step
    below (x + u, / n_bins, - 0.5, and back in input_to_pixels) is exact in float32 for n_bins <= 256.
    """
    xf = x.to(torch.float32)
    u = torch.rand(xf.shape, generator=generator, dtype=torch.float32, device=xf.device)
    u = torch.floor(u * _U_GRID) / _U_GRID
    return (xf + u) / n_bins - 0.5


def pixels_to_input(x: Tensor, n_bins: int = 256) -> Tensor:
    """Deterministic flow input: the centre of each pixel's bin (what encode() uses, so decode rounds back)."""
    return (x.to(torch.float32) + 0.5) / n_bins - 0.5


def input_to_pixels(y: Tensor, n_bins: int = 256) -> Tensor:
    """Inverse of the dequantisation: continuous values -> uint8 pixels (floor of the bin, clipped)."""
    return torch.floor((y + 0.5) * n_bins).clamp_(0, n_bins - 1).to(torch.uint8)


def bits_per_dim(log_prob: Tensor, n_dims: int, n_bins: int = 256) -> Tensor:
    """Bits/dim of discrete pixels from the log-density (nats) of their dequantised values in [-0.5, 0.5).

    The density lives on values scaled by 1/n_bins, so each dimension pays log(n_bins) nats more:
    bpd = (-log p(y) + D log n_bins) / (D ln 2).
    """
    return (-log_prob + n_dims * math.log(n_bins)) / (n_dims * LOG2)


def gaussian_log_prob(x: Tensor, mean: Tensor | None = None, logs: Tensor | None = None) -> Tensor:
    """Sum over all but the batch dimension of log N(x; mean, exp(logs)^2)."""
    if mean is None:
        mean = torch.zeros_like(x)
    if logs is None:
        logs = torch.zeros_like(x)
    lp = -0.5 * (math.log(2 * math.pi) + 2.0 * logs + (x - mean) ** 2 * torch.exp(-2.0 * logs))
    return lp.flatten(1).sum(1)


# --- shape layers ------------------------------------------------------------------------------------
def squeeze2d(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, 4C, H/2, W/2): each 2x2 patch becomes 4 channels (volume-preserving)."""
    n, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"squeeze needs even height and width, got {h}x{w}")
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * 4, h // 2, w // 2)


def unsqueeze2d(x: Tensor) -> Tensor:
    """Inverse of squeeze2d."""
    n, c, h, w = x.shape
    x = x.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c // 4, h * 2, w * 2)


class Squeeze(nn.Module):
    """squeeze2d as a flow layer (log-det 0)."""

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return squeeze2d(x), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, h: Tensor | None = None) -> Tensor:
        return unsqueeze2d(y)


def split_channels(x: Tensor) -> tuple[Tensor, Tensor]:
    """Split along channels into a kept half and a factored-out half (the first gets the extra one)."""
    c = x.shape[1]
    return x[:, : c - c // 2], x[:, c - c // 2 :]


# --- ActNorm -----------------------------------------------------------------------------------------
class ActNorm(nn.Module):
    """Per-channel affine y = (x + b) * exp(s), initialised from the first batch to zero mean, unit variance.

    With `cond_dim > 0`, z adds a per-channel shift and log-scale through a zero-initialised linear map,
    so at initialisation the layer is the plain data-initialised ActNorm. A channel that is constant in
    the init batch keeps scale 1 (dividing by its zero std would blow the layer up).
    """

    def __init__(self, channels: int, cond_dim: int = 0, min_std: float = 1e-3):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        self.min_std = min_std
        self.cond = nn.Linear(cond_dim, 2 * channels) if cond_dim > 0 else None
        if self.cond is not None:
            nn.init.zeros_(self.cond.weight)
            nn.init.zeros_(self.cond.bias)

    @torch.no_grad()
    def _init_from(self, x: Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        std = torch.where(std > self.min_std, std, torch.ones_like(std))
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std))
        self.initialized.fill_(True)

    def _params(self, x: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        bias, logs = self.bias, self.logs
        if self.cond is not None and h is not None:
            db, ds = self.cond(h).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
            bias, logs = bias + db, logs + ds
        return bias, logs

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not bool(self.initialized):
            self._init_from(x)
        bias, logs = self._params(x, h)
        y = (x + bias) * torch.exp(logs)
        logdet = logs.expand(x.shape[0], -1, -1, -1).flatten(1).sum(1) * (x.shape[2] * x.shape[3])
        return y, logdet

    def inverse(self, y: Tensor, h: Tensor | None = None) -> Tensor:
        bias, logs = self._params(y, h)
        return y * torch.exp(-logs) - bias


# --- invertible 1x1 convolution -------------------------------------------------------------------------
class InvConv1x1LU(nn.Module):
    """Invertible 1x1 convolution with W = P L (U + diag(sign * exp(log_s))), Glow's LU form.

    log|det W| is sum(log_s), so the log-determinant costs O(C) instead of a C^3 determinant.
    P and sign are fixed; L is unit lower-triangular, U strictly upper-triangular.
    """

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels, generator=generator, dtype=torch.float64))[0]
        p, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        self.register_buffer("p", p.to(torch.float32))
        self.register_buffer("sign_s", torch.sign(s).to(torch.float32))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower.to(torch.float32))
        self.upper = nn.Parameter(torch.triu(upper, 1).to(torch.float32))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).to(torch.float32))

    def weight(self) -> Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        w = self.weight()
        y = F.conv2d(x, w.unsqueeze(-1).unsqueeze(-1))
        logdet = self.log_s.sum() * (x.shape[2] * x.shape[3])
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, h: Tensor | None = None) -> Tensor:
        # Inverting in float64 keeps the round trip well inside 1e-4 even after many layers.
        w_inv = torch.linalg.inv(self.weight().to(torch.float64)).to(y.dtype)
        return F.conv2d(y, w_inv.unsqueeze(-1).unsqueeze(-1))


# --- affine coupling ---------------------------------------------------------------------------------
class CouplingNet(nn.Module):
    """conv3x3 -> act -> conv1x1 -> act -> zero-initialised conv3x3; z enters as a bias of the first layer."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, cond_dim: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        self.conv3 = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv3.weight)
        nn.init.zeros_(self.conv3.bias)
        self.cond = nn.Linear(cond_dim, hidden) if cond_dim > 0 else None
        if self.cond is not None:
            nn.init.zeros_(self.cond.weight)
            nn.init.zeros_(self.cond.bias)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        a = self.conv1(x)
        if self.cond is not None and h is not None:
            a = a + self.cond(h).unsqueeze(-1).unsqueeze(-1)
        a = F.leaky_relu(a, 0.1)
        a = F.leaky_relu(self.conv2(a), 0.1)
        return self.conv3(a)


class AffineCoupling(nn.Module):
    """y_b = (x_b + t(x_a, z)) * sigmoid(s(x_a, z) + 2), y_a = x_a.

    The sigmoid bounds the scale in (0, 1) and starts it near 0.88, which keeps early training stable
    (an unbounded exp(s) can explode); the ActNorm that follows restores the variance.
    """

    def __init__(self, channels: int, hidden: int, cond_dim: int = 0):
        super().__init__()
        self.n_keep = channels - channels // 2
        self.n_change = channels // 2
        self.net = CouplingNet(self.n_keep, 2 * self.n_change, hidden, cond_dim)

    def _shift_scale(self, xa: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        out = self.net(xa, h)
        shift, raw = out[:, 0::2], out[:, 1::2]
        return shift, raw + 2.0

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        xa, xb = x[:, : self.n_keep], x[:, self.n_keep :]
        shift, pre = self._shift_scale(xa, h)
        yb = (xb + shift) * torch.sigmoid(pre)
        logdet = F.logsigmoid(pre).flatten(1).sum(1)
        return torch.cat([xa, yb], dim=1), logdet

    def inverse(self, y: Tensor, h: Tensor | None = None) -> Tensor:
        ya, yb = y[:, : self.n_keep], y[:, self.n_keep :]
        shift, pre = self._shift_scale(ya, h)
        xb = yb / torch.sigmoid(pre) - shift
        return torch.cat([ya, xb], dim=1)


class FlowStep(nn.Module):
    """One Glow step: ActNorm -> invertible 1x1 conv -> affine coupling."""

    def __init__(self, channels: int, hidden: int, cond_dim: int = 0, generator: torch.Generator | None = None):
        super().__init__()
        self.actnorm = ActNorm(channels, cond_dim)
        self.invconv = InvConv1x1LU(channels, generator)
        self.coupling = AffineCoupling(channels, hidden, cond_dim)

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, ld1 = self.actnorm(x, h)
        x, ld2 = self.invconv(x, h)
        x, ld3 = self.coupling(x, h)
        return x, ld1 + ld2 + ld3

    def inverse(self, y: Tensor, h: Tensor | None = None) -> Tensor:
        y = self.coupling.inverse(y, h)
        y = self.invconv.inverse(y, h)
        return self.actnorm.inverse(y, h)


# --- factored-out latents with a learned conditional prior -------------------------------------------------
class SplitPrior(nn.Module):
    """Factor out half the channels as standard-normal noise eps = (x2 - mu) / sigma, Glow's learned split prior.

    mu and log sigma come from the kept half (zero-initialised conv) plus z (zero-initialised linear).
    The map x2 -> eps is part of the flow, so its log-det, -sum(log sigma), is returned with it.
    """

    def __init__(self, channels: int, cond_dim: int = 0):
        super().__init__()
        self.n_keep = channels - channels // 2
        self.n_out = channels // 2
        self.conv = nn.Conv2d(self.n_keep, 2 * self.n_out, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.cond = nn.Linear(cond_dim, 2 * self.n_out) if cond_dim > 0 else None
        if self.cond is not None:
            nn.init.zeros_(self.cond.weight)
            nn.init.zeros_(self.cond.bias)

    def _params(self, x1: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        out = self.conv(x1)
        if self.cond is not None and h is not None:
            out = out + self.cond(h).unsqueeze(-1).unsqueeze(-1)
        return out[:, 0::2], out[:, 1::2]

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x -> (kept half, eps, log-det)."""
        x1, x2 = split_channels(x)
        mean, logs = self._params(x1, h)
        eps = (x2 - mean) * torch.exp(-logs)
        return x1, eps, -logs.flatten(1).sum(1)

    def inverse(self, x1: Tensor, eps: Tensor, h: Tensor | None = None) -> Tensor:
        mean, logs = self._params(x1, h)
        return torch.cat([x1, mean + eps * torch.exp(logs)], dim=1)


class TopPrior(nn.Module):
    """Learned prior of the last level, eps = (x - mu) / sigma, with a per-position mean and log-scale
    plus a spatial map from z (both zero-initialised), so z can set the coarse layout of the image."""

    def __init__(self, shape: tuple[int, int, int], cond_dim: int = 0):
        super().__init__()
        self.shape = shape
        self.base = nn.Parameter(torch.zeros(1, 2 * shape[0], shape[1], shape[2]))
        numel = 2 * shape[0] * shape[1] * shape[2]
        self.cond = nn.Linear(cond_dim, numel) if cond_dim > 0 else None
        if self.cond is not None:
            nn.init.zeros_(self.cond.weight)
            nn.init.zeros_(self.cond.bias)

    def _params(self, n: int, h: Tensor | None) -> tuple[Tensor, Tensor]:
        out = self.base.expand(n, -1, -1, -1)
        if self.cond is not None and h is not None:
            out = out + self.cond(h).view(n, 2 * self.shape[0], self.shape[1], self.shape[2])
        return out[:, 0::2], out[:, 1::2]

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, logs = self._params(x.shape[0], h)
        return (x - mean) * torch.exp(-logs), -logs.flatten(1).sum(1)

    def inverse(self, eps: Tensor, h: Tensor | None = None) -> Tensor:
        mean, logs = self._params(eps.shape[0], h)
        return mean + eps * torch.exp(logs)
