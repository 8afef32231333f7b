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

The argmax flow's parts (Hoogeboom et al. 2021): :func:`binary_codes` / :func:`partition_width`, a
partition of R^d into exactly one region per category (``binary``: sign patterns in ceil(log2 K)
coordinates; ``onehot``: argmax regions in K coordinates), and :class:`ArgmaxDequantizer`, a learned
context-dependent q(v|x) (bidirectional transformer over the string's categories -> Gaussian ->
:class:`ConditionalAffineCoupling` s -> thresholding into x's region, exact log q) with the decoder
``decode(v)`` that recovers x from every v ~ q(v|x).

:class:`CategoricalGaussians` is the Gaussian dequantizer: one learned diagonal Gaussian in R^C per category,
q(v|x) = prod_t N(v_t; mu_{x_t}, sigma_{x_t}^2), and its Bayes-rule decoder
p(x_t = k | v_t) = pi_{t,k} N(v_t; mu_k, sigma_k) / sum_j pi_{t,j} N(v_t; mu_j, sigma_j) with learned
per-position category weights pi (a proper distribution over categories for every v).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

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


def bidirectional_trunk(n_positions: int, d_model: int, n_layers: int, n_heads: int,
                        mlp_ratio: int) -> tuple[nn.Parameter, nn.ModuleList, nn.LayerNorm]:
    """Learned positions, ``n_layers`` bidirectional pre-LN blocks and a final LayerNorm: the trunk of
    the coupling conditioners and of the argmax dequantizer's q(v|x)."""
    cfg = BackboneConfig(vocab_size=1, max_positions=n_positions, d_model=d_model, n_layers=n_layers,
                         n_heads=n_heads, mlp_ratio=mlp_ratio, dropout=0.0, causal=False)
    return (nn.Parameter(torch.randn(n_positions, d_model) * 0.02), nn.ModuleList(Block(cfg) for _ in range(n_layers)),
            nn.LayerNorm(d_model))


class CouplingNet(nn.Module):
    """Bidirectional transformer over positions: x_a [B, T, Ca] -> (s_raw, t) [B, T, Cb] each."""

    def __init__(self, c_in: int, c_out: int, max_positions: int, d_model: int, n_layers: int,
                 n_heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(c_in, d_model)
        self.pos, self.blocks, self.ln = bidirectional_trunk(max_positions, d_model, n_layers, n_heads, mlp_ratio)
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


# --- argmax flow (Hoogeboom et al. 2021): a partition of R^d into one region per category -------------

PARTITIONS = ("binary", "onehot")


def partition_width(partition: str, n_categories: int) -> int:
    """Coordinates per position of a partition of R^d into ``n_categories`` regions: ``onehot`` K,
    ``binary`` max(2, ceil(log2 K)) (at least 2: a coupling splits the channels in two)."""
    if partition == "onehot":
        return n_categories
    if partition == "binary":
        return max(2, math.ceil(math.log2(n_categories)))
    raise ValueError(f"unknown partition {partition!r}; accepted: {', '.join(PARTITIONS)}")


def binary_codes(n_categories: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """The binary partition of R^width into exactly K = ``n_categories`` regions (2^(w-1) <= K <= 2^w).

    A point's code is its sign pattern, sum_j [v_j > 0] 2^j. The M = 2^w - K first categories own two
    codes each, c and c + 2^(w-1) (their last coordinate is free: the region is an orthant of the first
    w - 1 coordinates times R); the others own one code each, the unused ones in increasing order. So
    every code, hence every point of R^w off the coordinate planes, decodes to exactly one category.
    Returns ``signs`` [K, w] (+-1), ``mask`` [K, w] (1 where the coordinate's sign is fixed) and
    ``code_to_cat`` [2^w]."""
    K, w = n_categories, width
    if not 2 ** (w - 1) <= K <= 2 ** w:
        raise ValueError(f"{K} categories need 2^(w-1) <= K <= 2^w, got width {w}")
    n_double = 2 ** w - K
    half = 2 ** (w - 1)
    code_to_cat = torch.full((2 ** w,), -1, dtype=torch.long)
    cat_code = []
    for c in range(n_double):
        code_to_cat[c] = code_to_cat[c + half] = c
        cat_code.append(c)
    free = [code for code in range(2 ** w) if code_to_cat[code] < 0]
    for c, code in zip(range(n_double, K), free):
        code_to_cat[code] = c
        cat_code.append(code)
    assert (code_to_cat >= 0).all() and len(cat_code) == K
    bits = (torch.tensor(cat_code)[:, None] >> torch.arange(w)) & 1  # [K, w]
    signs = (2 * bits - 1).float()
    mask = torch.ones(K, w)
    mask[:n_double, w - 1] = 0.0
    return signs, mask, code_to_cat


class ConditionalAffineCoupling(nn.Module):
    """Per-position affine coupling of u [B, T, C] given a context h [B, T, H] (forward direction only):
    u_b -> u_b * exp(s) + t with (s_raw, t) = MLP([u_a, h]) (GELU), s soft-clamped; ``flip`` swaps the
    halves' roles. Starts as the identity."""

    def __init__(self, channels: int, context: int, hidden: int, clamp: float, flip: bool) -> None:
        super().__init__()
        self.split = channels // 2 if not flip else channels - channels // 2
        self.flip = flip
        self.clamp = float(clamp)
        self.net = nn.Sequential(nn.Linear(self.split + context, hidden), nn.GELU(),
                                 nn.Linear(hidden, 2 * (channels - self.split)))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, u: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        if self.flip:
            u = u.flip(-1)
        ua, ub = u[..., : self.split], u[..., self.split:]
        s, t = self.net(torch.cat([ua, h], -1)).float().chunk(2, dim=-1)
        s = self.clamp * torch.tanh(s / self.clamp)
        out = torch.cat([ua, ub.float() * torch.exp(s) + t], -1)
        if self.flip:
            out = out.flip(-1)
        return out, s.sum((1, 2), dtype=torch.float64)


class ArgmaxDequantizer(nn.Module):
    """The argmax flow's variational dequantizer q(v|x) and its deterministic decoder x = decode(v).

    Context h = a bidirectional transformer (GELU) over the token embeddings of the whole padded string
    x (plus learned positions); u = mu(h) + sigma(h) * eps, eps ~ N(0, I), then ``n_couplings``
    conditional affine couplings given h; then the thresholding bijection into x's region:

    * ``onehot`` (width K, decode = argmax): T = u_x; v_x = T, v_i = T - softplus(T - u_i) (i != x),
      log-det sum_{i != x} log sigmoid(T - u_i);
    * ``binary`` (width ceil(log2 K), decode = sign pattern, :func:`binary_codes`): v_j = s_j softplus(u_j)
      on the coordinates whose sign x fixes (log-det sum log sigmoid(u_j)), v_j = u_j on a free one.

    log q(v|x) = log N(eps) - sum log sigma - (couplings' log-det) - (threshold's log-det), exact.
    """

    def __init__(self, n_categories: int, n_positions: int, partition: str, *, d_model: int, n_layers: int,
                 n_heads: int, mlp_ratio: int, n_couplings: int, clamp: float, init_scale: float) -> None:
        super().__init__()
        self.partition = partition
        self.n_categories = n_categories
        self.dim = w = partition_width(partition, n_categories)
        if partition == "binary":
            signs, mask, code_to_cat = binary_codes(n_categories, w)
            self.register_buffer("signs", signs, persistent=False)
            self.register_buffer("mask", mask, persistent=False)
            self.register_buffer("code_to_cat", code_to_cat, persistent=False)
            self.register_buffer("powers", 2 ** torch.arange(w), persistent=False)
        self.embed = nn.Embedding(n_categories, d_model)
        self.pos, self.blocks, self.ln = bidirectional_trunk(n_positions, d_model, n_layers, n_heads, mlp_ratio)
        self.out = nn.Linear(d_model, 2 * w)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():  # start: u ~ N(1, init_scale^2), a point well inside its region
            self.out.bias[:w] = 1.0 if partition == "binary" else 0.0
            self.out.bias[w:] = math.log(init_scale)
        self.couplings = nn.ModuleList(ConditionalAffineCoupling(w, d_model, mlp_ratio * d_model, clamp, bool(i % 2))
                                       for i in range(n_couplings))

    def context(self, cats: Tensor) -> Tensor:
        h = self.embed(cats) + self.pos[: cats.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.ln(h)

    def threshold(self, u: Tensor, cats: Tensor) -> tuple[Tensor, Tensor]:
        """v in x's region and log |det dv/du| [B] (float64)."""
        # The floors below only guard against rounding (softplus underflowing to 0; T - softplus(gap)
        # rounding to T): they keep v strictly inside the region, so decode(v) = x for every sample.
        if self.partition == "binary":
            mask, signs = self.mask[cats], self.signs[cats]
            v = torch.where(mask.bool(), signs * F.softplus(u).clamp_min(torch.finfo(u.dtype).tiny), u)
            return v, (mask * F.logsigmoid(u)).sum((1, 2), dtype=torch.float64)
        top = u.gather(-1, cats.unsqueeze(-1))  # [B, T, 1]
        gap = top - u
        below = torch.nextafter(top, torch.full_like(top, float("-inf")))
        v = torch.minimum(top - F.softplus(gap), below).scatter(-1, cats.unsqueeze(-1), top)
        others = torch.ones_like(u).scatter(-1, cats.unsqueeze(-1), 0.0)
        return v, (others * F.logsigmoid(gap)).sum((1, 2), dtype=torch.float64)

    def sample(self, cats: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """v ~ q(v|x) (reparameterised, v = v(eps)) and log q(v|x) [B] (float64, summed over positions)."""
        h = self.context(cats)
        mu, raw = self.out(h).float().chunk(2, dim=-1)
        log_sigma = 6.0 * torch.tanh(raw / 6.0)  # soft clamp: sigma in (e^-6, e^6)
        u = mu + torch.exp(log_sigma) * eps
        logq = (-0.5 * eps.double() ** 2 - 0.5 * LOG_2PI).sum((1, 2)) - log_sigma.sum((1, 2), dtype=torch.float64)
        for coupling in self.couplings:
            u, ld = coupling(u, h)
            logq = logq - ld
        v, ld = self.threshold(u, cats)
        return v, logq - ld

    def decode(self, v: Tensor) -> Tensor:
        """[B, T] the category of each position's region."""
        if self.partition == "onehot":
            return v.argmax(-1)
        code = ((v > 0).long() * self.powers).sum(-1)
        return self.code_to_cat[code]

    def end_costs(self, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Squared Euclidean distances (float64) from each v_t to the region of category 0 (``<eos>``),
        [B, T], and to the nearest region of a symbol (categories >= 1), [B, T], with that symbol [B, T]
        (ties: the lowest category). Zero where v_t lies in the region.

        binary: the regions are products of half-lines and lines, so the distance to region c is
        sum_j mask_cj relu(-s_cj v_j)^2. onehot: the distance to {w : w_c >= w_i for all i} (projection by
        water-filling: raise w_c and lower the coordinates above it to a common level); the nearest symbol
        region is the largest symbol coordinate's, at distance relu(v_eos - v_s)^2 / 2."""
        v = v.double()
        if self.partition == "binary":
            below, above = torch.relu(-v) ** 2, torch.relu(v) ** 2  # cost of making v_j > 0, < 0
            pos, neg = (self.mask * (self.signs > 0)).double(), (self.mask * (self.signs < 0)).double()
            dist = below @ pos.T + above @ neg.T  # [B, T, K]
            d_sym, best = dist[..., 1:].min(-1)
            return dist[..., 0], d_sym, best + 1
        v_end, sym = v[..., 0], v[..., 1:]
        top, best = sym.max(-1)
        d_sym = torch.relu(v_end - top) ** 2 / 2
        a = sym.sort(-1, descending=True).values  # [B, T, K-1]
        m = torch.arange(1, a.shape[-1] + 1, device=v.device, dtype=v.dtype)
        prefix = torch.cat([torch.zeros_like(a[..., :1]), a.cumsum(-1)[..., :-1]], -1)  # sum of the m-1 above
        level_before = (v_end.unsqueeze(-1) + prefix) / m  # the common level with the m-1 largest lowered
        count = (a > level_before).sum(-1, keepdim=True)  # how many are lowered (a prefix of the sorted ones)
        level = (v_end.unsqueeze(-1) + a.cumsum(-1).gather(-1, (count - 1).clamp_min(0)) * (count > 0)) / (1 + count)
        lowered = torch.arange(a.shape[-1], device=v.device) < count
        d_end = (level.squeeze(-1) - v_end) ** 2 + (((a - level) ** 2) * lowered).sum(-1)
        return d_end, d_sym, best + 1
