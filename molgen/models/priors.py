"""Priors p(z) for the VAE, as modules with ``log_prob`` / ``sample``, and the KL estimators.

* ``gaussian``: N(0, I); KL(q||p) in closed form.
* ``mog``: learned mixture of K diagonal Gaussians, means init N(0, I), log-scales init 0, weights
  fixed uniform by default (``learn_weights=True`` learns logits). Dead components can be re-seeded.
* ``vamp``: VampPrior p(z) = 1/K sum_k q(z | u_k) with K learned pseudo-inputs. The pseudo-inputs live
  at the input of the encoder *head* (u_k in R^h, the encoder's pooled feature space), so the same
  prior works for sequence and graph encoders; it is a mixture whose components move with the head.
* ``flow``: a latent normalizing flow p(z) = N(f(z); 0, I) |det df/dz|, f a RealNVP stack of affine
  couplings with small MLP conditioners (:class:`FlowPrior`); starts as N(0, I) and fits the aggregate
  posterior. One "component" (no mixture usage diagnostics, nothing to re-seed).

KL for non-Gaussian priors (no closed form) is estimated by Monte Carlo with the closed-form entropy
of q (see :func:`mc_kl`)::

    KL(q||p) = -H[q] - E_q log p(z),   H[q] = 1/2 sum_d (1 + log 2 pi + log sigma_d^2)
    KL_hat   = -H[q] - 1/S sum_s log p(z_s),   z_s = mu + sigma * eps_s

Unbiased; the entropy term is exact, so the variance comes only from the cross-entropy term, which
is averaged over S samples (S = 8 in training, 64 in evaluation; O(S K d_z), negligible next to the
decoder). The naive estimator log q(z) - log p(z) with one sample has much larger variance.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molgen.errors import ConfigError
from molgen.registry import PRIORS
from molgen.rowrandom import RowRandom

LOG2PI = math.log(2 * math.pi)


def _check_rows(n: int, rng: RowRandom) -> None:
    if len(rng) != n:
        raise ValueError(f"{len(rng)} random streams for {n} prior samples")


def diag_normal_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dimension (broadcasting)."""
    return -0.5 * (LOG2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


def diag_normal_entropy(logvar: Tensor) -> Tensor:
    """H[N(mu, diag exp(logvar))] in nats, closed form, [...]."""
    return 0.5 * (1.0 + LOG2PI + logvar).sum(-1)


def reparameterize(mu: Tensor, logvar: Tensor, n: int | None = None,
                   generator: torch.Generator | None = None, eps: Tensor | None = None) -> Tensor:
    """z = mu + sigma * eps; with ``n`` a leading sample dimension [n, B, d]. ``eps`` given: used as is
    (per-molecule noise for deterministic Monte-Carlo likelihoods)."""
    if eps is None:
        shape = mu.shape if n is None else (n, *mu.shape)
        eps = torch.randn(shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


class Prior(nn.Module):
    """p(z) over R^d: ``log_prob(z) -> [...]``, ``sample(n, rng) -> [n, d]``.

    ``sample`` draws row i from ``rng``'s streams of row i (:class:`~molgen.rowrandom.RowRandom`):
    the component choice from stream ``stream``, the Gaussian noise from stream ``stream + 1``."""

    n_components: int = 1

    def __init__(self, d_z: int) -> None:
        super().__init__()
        self.d_z = d_z

    def log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, rng: RowRandom, stream: int = 0) -> Tensor:
        raise NotImplementedError

    def component_log_probs(self, z: Tensor) -> Tensor:
        """[..., K] log pi_k + log p_k(z) (one component for non-mixtures)."""
        return self.log_prob(z).unsqueeze(-1)

    def kl(self, mu: Tensor, logvar: Tensor, n_samples: int = 8,
           generator: torch.Generator | None = None, eps: Tensor | None = None) -> Tensor:
        """[B] KL(q(z|x) || p(z)): Monte Carlo with closed-form entropy unless overridden."""
        return mc_kl(self, mu, logvar, n_samples, generator, eps)


def mc_kl(prior: Prior, mu: Tensor, logvar: Tensor, n_samples: int = 8,
          generator: torch.Generator | None = None, eps: Tensor | None = None) -> Tensor:
    """[B] KL_hat = -H[q] - mean_s log p(z_s), z_s ~ q (unbiased; see the module docstring).
    ``eps`` [S, B, d]: the standard-normal noise to use (else drawn from ``generator``)."""
    z = reparameterize(mu, logvar, n_samples, generator, eps)  # [S, B, d]
    return -diag_normal_entropy(logvar) - prior.log_prob(z).mean(0)


@PRIORS.register("gaussian")
class StandardNormalPrior(Prior):
    """N(0, I)."""

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (LOG2PI + z**2).sum(-1)

    def sample(self, n: int, rng: RowRandom, stream: int = 0) -> Tensor:
        _check_rows(n, rng)
        return rng.normal(stream + 1, self.d_z).to(self._device())

    def _device(self) -> torch.device:
        return torch.device("cpu") if not hasattr(self, "_dev_probe") else self._dev_probe.device

    def kl(self, mu: Tensor, logvar: Tensor, n_samples: int = 8,
           generator: torch.Generator | None = None, eps: Tensor | None = None) -> Tensor:
        """Closed form: 1/2 sum_d (mu^2 + sigma^2 - 1 - log sigma^2)."""
        return kl_standard_normal(mu, logvar)

    def __init__(self, d_z: int) -> None:
        super().__init__(d_z)
        self.register_buffer("_dev_probe", torch.zeros(()), persistent=False)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """[B] KL(N(mu, diag exp(logvar)) || N(0, I)) in closed form."""
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(-1)


@PRIORS.register("mog")
class MixturePrior(Prior):
    """Learned mixture of K diagonal Gaussians; uniform fixed weights unless ``learn_weights``."""

    def __init__(self, d_z: int, n_components: int = 8, learn_weights: bool = False) -> None:
        super().__init__(d_z)
        self.n_components = n_components
        self.means = nn.Parameter(torch.randn(n_components, d_z))
        self.log_scales = nn.Parameter(torch.zeros(n_components, d_z))
        self.learn_weights = learn_weights
        if learn_weights:
            self.logits = nn.Parameter(torch.zeros(n_components))
        else:
            self.register_buffer("logits", torch.zeros(n_components))

    def log_weights(self) -> Tensor:
        return F.log_softmax(self.logits, dim=-1)

    def component_log_probs(self, z: Tensor) -> Tensor:
        zz = z.unsqueeze(-2)  # [..., 1, d]
        return self.log_weights() + diag_normal_log_prob(zz, self.means, 2 * self.log_scales)

    def log_prob(self, z: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_probs(z), dim=-1)

    def sample(self, n: int, rng: RowRandom, stream: int = 0) -> Tensor:
        _check_rows(n, rng)
        k = rng.categorical(self.log_weights().exp().expand(n, -1), stream).to(self.means.device)
        eps = rng.normal(stream + 1, self.d_z).to(self.means)
        return self.means[k] + self.log_scales[k].exp() * eps

    @torch.no_grad()
    def reseed(self, dead: Tensor, means: Tensor, log_scales: Tensor) -> None:
        """Move dead components to new means/scales (e.g. encoder means of random molecules)."""
        self.means[dead] = means.to(self.means)
        self.log_scales[dead] = log_scales.to(self.log_scales)
        if self.learn_weights:
            self.logits[dead] = self.logits.mean()


@PRIORS.register("vamp")
class VampPrior(Prior):
    """p(z) = 1/K sum_k q_head(z | u_k), pseudo-inputs u_k at the encoder head's input.

    The head (features -> (mu, logvar)) is the encoder's; it is bound with :meth:`bind` and held
    as a plain reference so its weights are stored once (under the encoder).
    """

    def __init__(self, d_z: int, feature_dim: int, n_components: int = 8) -> None:
        super().__init__(d_z)
        self.n_components = n_components
        self.pseudo_inputs = nn.Parameter(torch.randn(n_components, feature_dim))
        self._head: Any = None

    def bind(self, head: nn.Module) -> VampPrior:
        object.__setattr__(self, "_head", head)  # not a submodule: no duplicate weights in the state dict
        return self

    def components(self) -> tuple[Tensor, Tensor]:
        if self._head is None:
            raise RuntimeError("VampPrior needs the encoder head: call prior.bind(encoder.head)")
        return self._head(self.pseudo_inputs)

    def component_log_probs(self, z: Tensor) -> Tensor:
        m, lv = self.components()
        return diag_normal_log_prob(z.unsqueeze(-2), m, lv) - math.log(self.n_components)

    def log_prob(self, z: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_probs(z), dim=-1)

    def sample(self, n: int, rng: RowRandom, stream: int = 0) -> Tensor:
        _check_rows(n, rng)
        m, lv = self.components()
        k = rng.categorical(torch.ones(n, self.n_components, device=m.device), stream).to(m.device)
        eps = rng.normal(stream + 1, self.d_z).to(m)
        return m[k] + (0.5 * lv[k]).exp() * eps

    @torch.no_grad()
    def reseed(self, dead: Tensor, features: Tensor) -> None:
        """Move dead pseudo-inputs to encoder features of random molecules."""
        self.pseudo_inputs[dead] = features.to(self.pseudo_inputs)


_ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU}
_PERMUTATIONS = ("random", "reverse", "none")


class MLPCoupling(nn.Module):
    """Masked affine coupling on z [N, d]: with mask m (1 = conditioning dims),
    ``y = z * exp(s) + t``, ``(s_raw, t) = net(z * m)``, ``s = clamp * tanh(s_raw / clamp) * (1 - m)``,
    ``t = t * (1 - m)``; log |det dy/dz| = sum(s). A mask of all zeros (d = 1) is an element-wise affine
    map whose (s, t) come from the conditioner's biases. The last layer is zero-initialised: identity."""

    def __init__(self, mask: Tensor, hidden: int, activation: str, clamp: float) -> None:
        super().__init__()
        d = mask.numel()
        act = _ACTIVATIONS[activation]
        self.register_buffer("mask", mask.float(), persistent=False)  # rebuilt from the layer index
        self.clamp = float(clamp)
        self.net = nn.Sequential(nn.Linear(d, hidden), act(), nn.Linear(hidden, hidden), act(),
                                 nn.Linear(hidden, 2 * d))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _st(self, za: Tensor) -> tuple[Tensor, Tensor]:
        s_raw, t = self.net(za).chunk(2, dim=-1)
        free = 1.0 - self.mask
        return self.clamp * torch.tanh(s_raw / self.clamp) * free, t * free

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._st(z * self.mask)
        return z * torch.exp(s) + t, s.sum(-1)

    def inverse(self, y: Tensor) -> Tensor:
        s, t = self._st(y * self.mask)  # the conditioning dims pass through unchanged
        return (y - t) * torch.exp(-s)


@PRIORS.register("flow")
class FlowPrior(Prior):
    """Latent RealNVP prior: p(z) = N(f(z); 0, I) |det df/dz|, evaluated exactly in float32.

    f = C_L o P_L o ... o C_1 o P_1: ``n_layers`` couplings (:class:`MLPCoupling`) on alternating halves of z
    (layer i conditions on the first floor(d/2) dims when i is even, on the rest when odd), each after a
    fixed permutation P_i (``permutation``: ``"random"`` — drawn from a generator seeded with ``seed``,
    stored in the state dict — ``"reverse"`` or ``"none"``). Conditioners: Linear-act-Linear-act-Linear,
    width ``hidden``, ``activation`` silu | gelu, log-scales soft-clamped to (-clamp, clamp). The last
    layers start at zero, so the prior starts as N(0, I).

    ``sample`` draws u ~ N(0, I) for row i from stream ``stream + 1`` of row i (as the Gaussian noise of
    the other priors; ``stream`` itself is unused) and returns f^{-1}(u), row by row.
    """

    def __init__(self, d_z: int, n_layers: int = 4, hidden: int = 128, activation: str = "silu",
                 clamp: float = 2.0, permutation: str = "random", seed: int = 0) -> None:
        super().__init__(d_z)
        if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1:
            raise ConfigError(f"prior 'flow': n_layers must be an integer >= 1, got {n_layers!r}")
        if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
            raise ConfigError(f"prior 'flow': hidden must be an integer >= 1, got {hidden!r}")
        if activation not in _ACTIVATIONS:
            raise ConfigError(f"prior 'flow': unknown activation {activation!r}; accepted: "
                              f"{', '.join(_ACTIVATIONS)}")
        if permutation not in _PERMUTATIONS:
            raise ConfigError(f"prior 'flow': unknown permutation {permutation!r}; accepted: "
                              f"{', '.join(_PERMUTATIONS)}")
        if isinstance(clamp, bool) or not isinstance(clamp, (int, float)) or not (0 < clamp < math.inf):
            raise ConfigError(f"prior 'flow': clamp must be a finite number > 0, got {clamp!r}")
        self.n_layers, self.hidden, self.activation = n_layers, hidden, activation
        self.clamp, self.permutation, self.seed = float(clamp), permutation, int(seed)
        g = torch.Generator().manual_seed(int(seed))  # the permutations do not consume the global stream
        perms = []
        for _ in range(n_layers):
            if permutation == "random":
                perms.append(torch.randperm(d_z, generator=g))
            elif permutation == "reverse":
                perms.append(torch.arange(d_z - 1, -1, -1))
            else:
                perms.append(torch.arange(d_z))
        self.register_buffer("perms", torch.stack(perms))  # [L, d]
        half = torch.arange(d_z) < d_z // 2
        self.couplings = nn.ModuleList(MLPCoupling(half if i % 2 == 0 else ~half, hidden, activation, clamp)
                                       for i in range(n_layers))

    def _dtype(self) -> torch.dtype:
        return self.couplings[0].net[0].weight.dtype  # float32 unless the whole model was cast

    def forward_flow(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """u = f(z) [..., d] and log |det df/dz| [...] (normalizing direction, float32, no autocast)."""
        shape = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            x = z.reshape(-1, self.d_z).to(self._dtype())
            logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for perm, c in zip(self.perms, self.couplings):
                x, ld = c(x[:, perm])
                logdet = logdet + ld
        return x.reshape(shape), logdet.reshape(shape[:-1])

    def inverse_flow(self, u: Tensor) -> Tensor:
        """z = f^{-1}(u) [..., d]."""
        shape = u.shape
        with torch.autocast(device_type=u.device.type, enabled=False):
            x = u.reshape(-1, self.d_z).to(self._dtype())
            inv_perms = torch.argsort(self.perms, dim=-1)
            for inv, c in zip(reversed(inv_perms), reversed(self.couplings)):
                x = c.inverse(x)[:, inv]
        return x.reshape(shape)

    def log_prob(self, z: Tensor) -> Tensor:
        u, logdet = self.forward_flow(z)
        return -0.5 * (LOG2PI + u * u).sum(-1) + logdet

    def sample(self, n: int, rng: RowRandom, stream: int = 0) -> Tensor:
        _check_rows(n, rng)
        u = rng.normal(stream + 1, self.d_z).to(device=self.perms.device, dtype=self._dtype())
        return self.inverse_flow(u)


def build_prior(spec: Any, d_z: int, feature_dim: int = 64) -> Prior:
    """A registered prior from a spec (``"mog"`` or ``{name, args}``); ``d_z`` / ``feature_dim`` are wired."""
    return PRIORS.build(spec, d_z=d_z, feature_dim=feature_dim)
