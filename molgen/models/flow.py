"""Categorical normalizing flow on fixed-length canonical SELFIES (or SMILES) strings, one-shot sampling.

**Padded strings.** A molecule's canonical token string x_1..x_n (n <= ``max_len``) becomes exactly one
padded string of length L = ``max_len`` + 1: the n symbols, then ``<eos>`` at every position n+1..L
(everything after the first ``<eos>`` is ``<eos>``; position L is always ``<eos>``). The flow's
categories are ``<eos>`` and the ordinary symbols (``<pad>``, ``<bos>``, ``<unk>`` are not categories).
Decoding a sampled padded string cuts it at its first ``<eos>``.

**Model.** Each category k has a learned diagonal Gaussian N(mu_k, sigma_k^2) in R^d (``dim``). A
padded string x is dequantized to v in R^{L x d} by q(v|x) = prod_t N(v_t; mu_{x_t}, sigma_{x_t}^2);
a flow f (``n_blocks`` x [ActNorm, invertible 1x1 channel mixing, affine coupling with soft-clamped
scales and a bidirectional-transformer conditioner], :mod:`molgen.nn.flows`) maps v to z = f(v) with a
standard normal base, p_flow(v) = N(f(v); 0, I) |det df/dv|. The decoder is Bayes' rule over the same
per-category Gaussians with learned per-position weights pi_t:
p(x_t = k | v_t) = pi_{t,k} N(v_t; mu_k, sigma_k) / sum_j pi_{t,j} N(v_t; mu_j, sigma_j),
and the decoder (``decoder: well-formed``, the default) renormalises their product over the
*well-formed* padded strings, the only ones a molecule can have (at least one symbol, then ``<eos>``
to the end):

    p(x|v) = prod_t p(x_t|v_t) / Z(v)  for well-formed x (0 otherwise),
    Z(v) = sum_{n=1}^{L-1} prod_{t<n} (1 - e_t) prod_{t>=n} e_t,   e_t = p(x_t = <eos> | v_t),

a sum over the L - 1 possible lengths (two cumulative sums). p(x|v) is a proper distribution over
well-formed strings for every v: the mass the product put on malformed strings, which no molecule
can have, goes to the real ones (log p(x|v) rises by -log Z(v) >= 0). ``decoder: independent`` is
the plain product, a distribution over all K^L category strings; decoding then cuts a sample at its
first ``<eos>``.

**Likelihood (derivation).** The joint p(x, v) = p_flow(v) p(x|v) has the marginal
P(x) = int p_flow(v) p(x|v) dv, and sum_x P(x) = int p_flow(v) sum_x p(x|v) dv = 1: P is a
distribution over padded strings. For any q(v|x) with q > 0 where p_flow p(x|.) > 0, Jensen gives

    log P(x) = log E_{q(v|x)} [p_flow(v) p(x|v) / q(v|x)]
            >= E_{q(v|x)} [log N(f(v); 0, I) + log|det df/dv| + log p(x|v) - log q(v|x)]   (kind dequantized-bound)

with every change-of-variables term (ActNorm, 1x1 mixing, couplings), the Bayes-rule posterior
(log p(x|v) <= 0, included) and the dequantizer's entropy (-log q). Its importance-weighted version
with K samples v_k ~ q(v|x) (kind ``iw-K``, as IWAE):

    log P(x) >= E log (1/K) sum_k p_flow(v_k) p(x|v_k) / q(v_k|x),

which is >= the single-sample bound and non-decreasing in K. ``dequantized-bound`` averages
``bound_samples`` Monte-Carlo samples of the first bound; ``iw-K`` uses the same samples (sample k is
identical in both). Both are per molecule, in nats, and deterministic per molecule: sample k's noise
comes from a generator seeded by the molecule's own tokens (``molgen.likelihood.row_seeds``) plus k.
The object is the canonical string of the representation; the sampler below puts at least P(x) on
every string, so the numbers are also lower bounds on the sampler's probability of the string.
``score`` reports ``iw-{iw_k}`` (``iw-16``).

**Sampling.** z ~ N(0, T^2 I) (T = temperature, the base standard deviation; T = 1 is the model and
anything else is labelled ``ancestral-T...`` by the base class), v = f^{-1}(z), x ~ p(x | v) exactly
(sampled, never argmax): a length n from its marginal prod_{t<n} (1 - e_t) prod_{t>=n} e_t / Z(v),
then each symbol x_t (t < n) from p(x_t | v_t) restricted to the symbols, ``<eos>`` after;
SELFIES -> SMILES. One pass, no loop over positions. Each molecule's noise (z, length, symbols) comes
from its own random streams (:class:`~molgen.rowrandom.RowRandom`), not from the batch it is drawn in. ``_sample`` returns no log-likelihood (a bound
would need the dequantizer's posterior).

**Numerics.** Log-determinants are float32 terms summed in float64; coupling scales are soft-clamped;
the conditioners' outputs are cast to float32 before the affine map (autocast-safe). A non-finite
training loss stops the run with a :class:`FloatingPointError` naming the step
(:class:`~molgen.training.callbacks.NonFiniteGuard`), which also writes ``last.ckpt`` after every
validation while the weights are finite: the last good checkpoint is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.errors import ConfigError, check_choice
from molgen.likelihood import resolve_k_kind, row_randn, row_seeds
from molgen.models.autoregressive import StringDecoding
from molgen.models.base import GenerativeModel
from molgen.models.config import ModelConfig
from molgen.nn.flows import CategoricalGaussians, Flow, standard_normal_log_prob
from molgen.registry import MODELS
from molgen.rowrandom import RowRandom
from molgen.training.optim import adamw_warmup_cosine
from molgen.training.progress import log_due

__all__ = ["FlowConfig", "FlowModel"]

DECODERS = ("well-formed", "independent")



@dataclass
class FlowConfig(ModelConfig):
    """Hyperparameters of the categorical flow: dequantizer width ``dim``, ``n_blocks`` coupling steps
    whose conditioners are ``cond_layers``-layer bidirectional transformers of width ``cond_d_model``,
    the coupling scale clamp, and the Monte-Carlo estimators (samples, chunking, seed salt)."""

    dim: int = 6
    n_blocks: int = 6
    cond_d_model: int = 64
    cond_layers: int = 1
    cond_heads: int = 4
    cond_mlp_ratio: int = 2
    clamp: float = 2.0
    init_scale: float = 0.5
    bound_samples: int = 8
    iw_k: int = 16
    iw_chunk: int = 4
    mc_seed: int = 0
    decoder: str = "well-formed"  # well-formed | independent (see the module docstring)

    def validate(self) -> None:
        super().validate()
        check_choice("decoder", self.decoder, DECODERS)
        for name in ("dim", "n_blocks", "cond_d_model", "cond_layers", "cond_heads", "cond_mlp_ratio",
                     "bound_samples", "iw_k",
                     "iw_chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        if self.dim < 2:
            raise ConfigError(f"dim must be >= 2 (a coupling splits the channels in two), got {self.dim!r}")
        if self.cond_d_model % self.cond_heads:
            raise ConfigError(f"cond_d_model {self.cond_d_model} must be divisible by cond_heads {self.cond_heads}")
        for name in ("clamp", "init_scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
                raise ConfigError(f"{name} must be a finite number > 0, got {v!r}")


@MODELS.register("flow")
class FlowModel(GenerativeModel):
    """Categorical normalizing flow over padded token strings (see the module docstring)."""

    name = "flow"
    capabilities = frozenset({"sample", "log_likelihood"})
    config_class = FlowConfig

    def __init__(self, config: FlowConfig, *, representation: Any, policy: Policy = DEFAULT_POLICY) -> None:
        super().__init__(config, representation=representation, policy=policy)
        if representation is None:
            raise ConfigError("the flow needs a fitted tokenizer as its representation (selfies or smiles)")
        tok = representation
        c = config
        self.strings = StringDecoding(tok, c.max_len)
        self.length = c.max_len + 1
        # categories: 0 = <eos> (also the padding), 1.. = the ordinary symbols (ids >= 4)
        specials = {tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id}
        ordinary = [i for i in range(tok.vocab_size) if i not in specials]
        cat_to_id = torch.tensor([tok.eos_id, *ordinary], dtype=torch.long)
        id_to_cat = torch.full((tok.vocab_size,), -1, dtype=torch.long)
        id_to_cat[cat_to_id] = torch.arange(len(cat_to_id))
        self.register_buffer("cat_to_id", cat_to_id, persistent=False)
        self.register_buffer("id_to_cat", id_to_cat, persistent=False)
        self.n_categories = len(cat_to_id)
        self.dequantizer = CategoricalGaussians(self.n_categories, c.dim, self.length, c.init_scale)
        self.flow = Flow(c.dim, self.length, c.n_blocks, c.cond_d_model, c.cond_layers, c.cond_heads, c.clamp,
                         mlp_ratio=c.cond_mlp_ratio)

    # --- data ----------------------------------------------------------------------------------
    def featurize(self, canonical_smiles: str) -> list[int]:
        return self.strings.featurize(canonical_smiles)

    def collate(self, items: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        """``ids`` / ``lengths`` as the string families, plus ``cats`` [B, L]: the padded category string."""
        out = self.strings.collate(items)
        cats = np.zeros((len(items), self.length), dtype=np.int64)  # category 0 = <eos> everywhere after
        lut = self.id_to_cat.cpu().numpy()
        for i, x in enumerate(items):
            cats[i, : len(x)] = lut[np.asarray(x, dtype=np.int64)]
        out["cats"] = torch.from_numpy(cats)
        return out

    # --- likelihood ----------------------------------------------------------------------------
    @classmethod
    def likelihood_kind(cls, config: ModelConfig, kind: str | None = None) -> str:
        return resolve_k_kind(kind, prefix="iw", default_k=config.iw_k, fixed=("dequantized-bound",),
                              family="the flow")

    @staticmethod
    def end_log_weights(log_probs: Tensor) -> Tensor:
        """[B, L] log prod_{t<n} P(x_t != <eos> | v_t) prod_{t>=n} P(x_t = <eos> | v_t) for n = 0..L-1:
        the independent decoder's mass on the well-formed strings of length n (float64; -inf for n = 0:
        a molecule has at least one symbol)."""
        lp = log_probs.double()
        log_sym = torch.logsumexp(lp[..., 1:], -1)  # log (1 - P(<eos>))
        before = torch.cat([torch.zeros_like(log_sym[:, :1]), log_sym.cumsum(1)[:, :-1]], 1)  # t < n
        after = lp[..., 0].flip(1).cumsum(1).flip(1)  # t >= n
        out = before + after
        out[:, 0] = float("-inf")
        return out

    def decoder_log_prob(self, v: Tensor, cats: Tensor) -> Tensor:
        """[B] log p(x|v) (float64): the per-position Bayes-rule posteriors, renormalised over well-formed
        padded strings (``decoder: well-formed``; -inf for any other string) or not (``independent``)."""
        lp = self.dequantizer.posterior_log_probs(v)
        log_px = lp.gather(-1, cats.unsqueeze(-1)).squeeze(-1).double().sum(1)
        if self.config.decoder == "independent":
            return log_px
        is_end = cats == 0
        well_formed = ~is_end[:, 0] & is_end[:, -1] & (is_end[:, :-1] <= is_end[:, 1:]).all(1)
        log_px = log_px - torch.logsumexp(self.end_log_weights(lp), 1)
        return log_px.masked_fill(~well_formed, float("-inf"))

    def log_weights(self, cats: Tensor, eps: Tensor) -> Tensor:
        """[B] log p_flow(v) + log p(x|v) - log q(v|x) for v = mu_x + sigma_x eps (float64)."""
        v, logq = self.dequantizer.sample(cats, eps)
        z, logdet = self.flow(v)
        return standard_normal_log_prob(z) + logdet + self.decoder_log_prob(v, cats) - logq

    def sample_log_weights(self, cats: Tensor, seeds: list[int], k: int) -> Tensor:
        """[k, B] log-weights of samples 0..k-1, sample j's noise from the rows' seeds + j."""
        B, Lp = cats.shape
        d, chunk = self.config.dim, self.config.iw_chunk
        out = []
        for s in range(0, k, chunk):
            js = range(s, min(k, s + chunk))
            eps = torch.stack([row_randn(seeds, (Lp, d), cats.device, offset=j) for j in js])  # [c, B, L, d]
            c = eps.shape[0]
            w = self.log_weights(cats.unsqueeze(0).expand(c, B, Lp).reshape(c * B, Lp), eps.reshape(c * B, Lp, d))
            out.append(w.view(c, B))
        return torch.cat(out)

    def log_likelihood(self, batch: dict[str, Any], *, kind: str | None = None) -> Tensor:
        """[B] lower bound on log P(padded canonical string), nats: ``iw-K`` (default) or ``dequantized-bound``."""
        kind = self.likelihood_kind(self.config, kind)
        cats = batch["cats"]
        seeds = row_seeds(batch["ids"], self.tokenizer.pad_id, salt=self.config.mc_seed)
        if kind == "dequantized-bound":
            return self.sample_log_weights(cats, seeds, self.config.bound_samples).mean(0)
        k = int(kind.split("-")[1])
        return torch.logsumexp(self.sample_log_weights(cats, seeds, k), 0) - math.log(k)

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.optim)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        cats = batch["cats"]
        eps = torch.randn((*cats.shape, self.config.dim), device=cats.device)
        bound = self.log_weights(cats, eps)  # one reparameterised sample of the bound per molecule
        loss = -(bound.mean() / self.length).float()  # nats per position: a scale-free objective
        if log_due(self):
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=cats.shape[0])
            self.log("train/bound", bound.mean().detach().float(), batch_size=cats.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        seeds = row_seeds(batch["ids"], self.tokenizer.pad_id, salt=self.config.mc_seed)
        bound = self.sample_log_weights(batch["cats"], seeds, 1)[0]
        self.log("val/nll", -bound.mean().float(), prog_bar=True, batch_size=bound.shape[0], sync_dist=True)

    # --- sampling ------------------------------------------------------------------------------
    def decode_base(self, z: Tensor, rng: RowRandom, first_stream: int = 1) -> Tensor:
        """Token ids [n, L] from base points z [n, L, d]: inverse flow, then x ~ p(x | v) (exactly: for the
        well-formed decoder a length n from its marginal, then symbols at t < n, <eos> after). Row i's
        draws come from its own streams of ``rng``: the length from ``first_stream``, the symbols from
        ``first_stream + 1`` (column t for position t); the independent decoder draws every position
        from ``first_stream``."""
        v = self.flow.inverse(z)
        lp = self.dequantizer.posterior_log_probs(v)
        n, L, _ = lp.shape
        if len(rng) != n:
            raise ValueError(f"{len(rng)} random streams for {n} base points")
        if self.config.decoder == "independent":
            cats = rng.categorical(lp.exp(), first_stream)
            return self.cat_to_id[cats]
        lengths = rng.categorical(torch.softmax(self.end_log_weights(lp), 1), first_stream)[:, None]  # [n, 1]
        # symbols renormalised with a softmax over the symbol logits (the exp of log-probs can underflow
        # to all zeros where <eos> is certain)
        symbols = 1 + rng.categorical(torch.softmax(lp[..., 1:], -1), first_stream + 1)
        cats = torch.where(torch.arange(L, device=lp.device) < lengths, symbols, torch.zeros_like(symbols))
        return self.cat_to_id[cats]

    @torch.no_grad()
    def _sample(self, n: int, *, temperature: float, rng: RowRandom, condition=None, guidance=None,
                constrain=None) -> tuple[list[str], None]:
        """One-shot: z ~ N(0, T^2 I), v = f^{-1}(z), a padded string x ~ p(x|v), cut at its first <eos>.
        Streams of a row: 0 its base point z (L * d normals), 1 the length, 2 the symbols."""
        self._refuse_constrain(constrain)
        z = rng.normal(0, self.length * self.config.dim).view(n, self.length, self.config.dim).to(self.device)
        ids = self.decode_base(z * temperature, rng, first_stream=1)
        return self.strings.decode(ids), None
