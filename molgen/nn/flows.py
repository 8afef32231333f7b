"""Invertible layers for the categorical flow, and its per-category dequantizer.

Every bijection maps ``x`` [B, T, C] (T positions, C channels) in the *normalizing* direction:
``forward(x) -> (y, logdet)`` with ``logdet`` [B] = log |det dy/dx| (float32 terms summed in
float64), and ``inverse(y) -> x``. Layers:

* :class:`ActNorm`: per-channel affine map, data-dependent initialisation on the first training batch
  (zero mean, unit variance per channel); identity until then.
* :class:`InvertibleLinear`: invertible 1x1 channel mixing ``y = x W^T``, W = P L (U + diag(sign e^s)),
  LU-parameterised so the log-determinant is ``T * sum(s)``.
* :class:`AffineCoupling`: ``y_b = x_b * exp(s) + t`` with ``(s, t) = net(x_a)`` and soft-clamped
  scales ``s = c * tanh(s_raw / c)``; the conditioner is a small bidirectional transformer over
  positions (GELU, the shared :class:`~molgen.nn.transformer.Block` with ``causal=False``).
* :class:`Flow`: a stack of [ActNorm -> InvertibleLinear -> AffineCoupling] steps.

:class:`CategoricalGaussians` is the dequantizer: one learned diagonal Gaussian in R^C per category,
q(v|x) = prod_t N(v_t; mu_{x_t}, sigma_{x_t}^2), and its Bayes-rule decoder
p(x_t = k | v_t) = pi_{t,k} N(v_t; mu_k, sigma_k) / sum_j pi_{t,j} N(v_t; mu_j, sigma_j) with learned
per-position category weights pi (a proper distribution over categories for every v).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from molgen.nn.transformer import BackboneConfig, Block

LOG_2PI = math.log(2 * math.pi)


class ActNorm(nn.Module):
    """y = (x + b) * exp(s) per channel; b, s set from the first training batch (data-dependent init)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.zeros(()))  # saved: a loaded model stays initialised

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Zero mean, unit variance per channel over the batch and positions of ``x``."""
        flat = x.detach().float().reshape(-1, x.shape[-1])
        moments = torch.stack([flat.mean(0), (flat * flat).mean(0)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # same init on every rank
            torch.distributed.all_reduce(moments)
            moments /= torch.distributed.get_world_size()
        mean, var = moments[0], (moments[1] - moments[0] ** 2).clamp_min(1e-6)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-0.5 * torch.log(var))
        self.initialized.fill_(1.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        y = (x + self.bias) * torch.exp(self.log_scale)
        logdet = (x.shape[1] * self.log_scale.float().sum()).double().expand(x.shape[0])
        return y, logdet

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class InvertibleLinear(nn.Module):
    """Invertible 1x1 channel mixing, LU-parameterised (Glow): W = P L (U + diag(sign * exp(log_s)))."""

    def __init__(self, channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> Tensor:
        eye = torch.eye(self.log_s.shape[0], device=self.log_s.device, dtype=self.log_s.dtype)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = x @ self.weight().to(x.dtype).T
        logdet = (x.shape[1] * self.log_s.float().sum()).double().expand(x.shape[0])
        return y, logdet

    def inverse(self, y: Tensor) -> Tensor:
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return y @ w_inv.T


class CouplingNet(nn.Module):
    """Bidirectional transformer over positions: x_a [B, T, Ca] -> (s_raw, t) [B, T, Cb] each."""

    def __init__(self, c_in: int, c_out: int, max_positions: int, d_model: int, n_layers: int,
                 n_heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        cfg = BackboneConfig(vocab_size=1, max_positions=max_positions, d_model=d_model, n_layers=n_layers,
                             n_heads=n_heads, mlp_ratio=mlp_ratio, dropout=0.0, causal=False)
        self.inp = nn.Linear(c_in, d_model)
        self.pos = nn.Parameter(torch.randn(max_positions, d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, 2 * c_out)
        nn.init.zeros_(self.out.weight)  # every coupling starts as the identity
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.inp(x) + self.pos[: x.shape[1]]
        for block in self.blocks:
            h = block(h)
        s, t = self.out(self.ln(h)).float().chunk(2, dim=-1)
        return s, t


class AffineCoupling(nn.Module):
    """y_a = x_a, y_b = x_b * exp(s) + t, (s_raw, t) = net(x_a), s = clamp * tanh(s_raw / clamp)."""

    def __init__(self, channels: int, max_positions: int, d_model: int, n_layers: int, n_heads: int,
                 clamp: float = 2.0, mlp_ratio: int = 4) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"an affine coupling needs at least 2 channels, got {channels}")
        self.split = channels // 2
        self.clamp = float(clamp)
        self.net = CouplingNet(self.split, channels - self.split, max_positions, d_model, n_layers, n_heads,
                               mlp_ratio)

    def _st(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(xa)
        return self.clamp * torch.tanh(s / self.clamp), t

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb = x[..., : self.split], x[..., self.split:]
        s, t = self._st(xa)
        yb = xb.float() * torch.exp(s) + t
        return torch.cat([xa, yb.to(x.dtype)], -1), s.sum((1, 2), dtype=torch.float64)

    def inverse(self, y: Tensor) -> Tensor:
        ya, yb = y[..., : self.split], y[..., self.split:]
        s, t = self._st(ya)
        return torch.cat([ya, ((yb.float() - t) * torch.exp(-s)).to(y.dtype)], -1)


class Chain(nn.Module):
    """Bijections applied in order; ``forward`` returns the summed log-determinant in float64."""

    def bijections(self) -> nn.ModuleList:
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for b in self.bijections():
            x, ld = b(x)
            total = total + ld
        return x, total

    def inverse(self, y: Tensor) -> Tensor:
        for b in reversed(self.bijections()):
            y = b.inverse(y)
        return y


class FlowStep(Chain):
    """ActNorm -> invertible 1x1 mixing -> affine coupling."""

    def __init__(self, channels: int, max_positions: int, d_model: int, n_layers: int, n_heads: int,
                 clamp: float, generator: torch.Generator | None = None, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList([ActNorm(channels), InvertibleLinear(channels, generator),
                                     AffineCoupling(channels, max_positions, d_model, n_layers, n_heads, clamp,
                                                    mlp_ratio)])

    def bijections(self) -> nn.ModuleList:
        return self.layers


class Flow(Chain):
    """A stack of :class:`FlowStep`; ``forward`` is data -> base with the summed log-determinant (float64)."""

    def __init__(self, channels: int, max_positions: int, n_blocks: int, d_model: int, n_layers: int,
                 n_heads: int, clamp: float = 2.0, seed: int = 0, mlp_ratio: int = 4) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)  # the 1x1 mixings' start does not consume the global stream
        self.steps = nn.ModuleList(FlowStep(channels, max_positions, d_model, n_layers, n_heads, clamp, g, mlp_ratio)
                                   for _ in range(n_blocks))

    def bijections(self) -> nn.ModuleList:
        return self.steps


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """[B] log N(z; 0, I) summed over all but the batch dimension, in float64."""
    z = z.double().flatten(1)
    return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * LOG_2PI


class CategoricalGaussians(nn.Module):
    """Per-category diagonal Gaussians in R^dim: the dequantizer q(v|x) and its Bayes-rule decoder p(x|v).

    Category 0 (the end / pad symbol) starts at the origin with the other means spread around it, so
    an untrained model already gives padding a cheap code.
    """

    def __init__(self, n_categories: int, dim: int, n_positions: int, init_scale: float = 0.5,
                 seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        mu = torch.randn(n_categories, dim, generator=g)
        mu[0] = 0.0
        self.mu = nn.Parameter(mu)
        self.log_sigma = nn.Parameter(torch.full((n_categories, dim), math.log(init_scale)))
        self.prior_logits = nn.Parameter(torch.zeros(n_positions, n_categories))
        self.dim = dim

    def sample(self, cats: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """v = mu_x + sigma_x * eps (reparameterised) and log q(v|x) [B] (float64, summed over positions)."""
        mu, log_sigma = self.mu[cats], self.log_sigma[cats]  # [B, T, d]
        v = mu + torch.exp(log_sigma) * eps
        logq = (-0.5 * eps.double() ** 2 - log_sigma.double() - 0.5 * LOG_2PI).sum((1, 2))
        return v, logq

    def component_log_probs(self, v: Tensor) -> Tensor:
        """[B, T, K] log N(v_t; mu_k, sigma_k^2) for every category k (as matrix products)."""
        v = v.float()
        inv_var = torch.exp(-2 * self.log_sigma.float())  # [K, d]
        mu = self.mu.float()
        quad = (v * v) @ inv_var.T - 2 * v @ (mu * inv_var).T + (mu * mu * inv_var).sum(-1)
        norm = -self.log_sigma.float().sum(-1) - 0.5 * self.dim * LOG_2PI
        return -0.5 * quad.clamp_min(0.0) + norm

    def posterior_log_probs(self, v: Tensor) -> Tensor:
        """[B, T, K] log p(x_t = k | v_t) by Bayes' rule with the per-position weights pi_t."""
        prior = torch.log_softmax(self.prior_logits.float()[: v.shape[1]], -1)
        return torch.log_softmax(self.component_log_probs(v) + prior, -1)
