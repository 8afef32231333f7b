"""Mixture-prior VAE over SMILES/SELFIES strings with posterior-collapse safeguards.

    q(z|x) = N(mu(x), diag sigma^2(x))   encoder: bi-GRU over tokens ("sequence") or GATv2 GNN ("graph")
    p(z)                                 prior: "gaussian" N(0, I) | "mog" (K learned Gaussians) | "vamp" |
                                         "flow" (a RealNVP density on z)
    p(x|z) = prod_t p(x_t | x_<t, z)     decoder "gru": z sets the initial state and is concatenated to every
                                         input embedding and to the output layer (skip connections);
                                         decoder "transformer": the transformer family's causal backbone
                                         with z as a prefix slot before <bos> (attended in every layer)
                                         and W z added to every input position (``init_from`` can start it
                                         from a trained transformer: the decoder then begins as that
                                         language model plus small z terms)

p(x|z) is a proper distribution over token strings (pad/bos/unk banned, EOS forced after ``max_len``
symbols), so the bounds below are bounds on log p(string) in nats per molecule:

    ELBO(x)   = E_q log p(x|z) - KL(q(z|x) || p(z))         (KL closed form for N(0,I), else MC, priors.py)
    IWAE-K(x) = E log 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)  (>= ELBO, increases with K, chunked)

``score`` reports IWAE-K (label ``iwae-K``, K = ``iwae_k``); ``score(..., kind="elbo")`` the ELBO and
``kind="iwae-200"`` another K. Both are deterministic per molecule: their noise is drawn from a
generator seeded by the molecule's own tokens (``molgen.likelihood.row_seeds``), so a molecule gets
the same number alone, duplicated or anywhere in any file. Evaluation always uses the plain beta = 1
bound.

Training objective (not the ELBO when safeguards are on): ``-E_q log p(x~|z) + beta_t * FB(KL)`` with

* cyclical KL annealing (``kl_anneal="cyclical"``, M = ``kl_cycles`` cycles, ramp fraction ``kl_ratio``,
  training ends at beta = 1; it reads the training-progress fraction, so it survives ``--resume``), ``"monotonic"`` (one ramp) or ``"none"`` (beta = 1 from step 0);
* free bits: FB(KL) = max(``free_bits``, batch-mean KL), one group (the total KL; default 0.25 d_z nats);
* reconstruction first: ``beta_max`` < 1 tops the schedule below 1 (the latent may carry more);
* prior fitting (``fit_prior``): the prior also maximises log p(z) of detached posterior samples, so it
  follows the aggregate posterior q(z) even where free bits or a small beta take the KL's gradient away;
* word dropout: decoder inputs replaced by <unk> with probability ``word_dropout`` (training only);
* aggressive encoder phase (He et al. 2019): ``aggressive_inner`` encoder-only steps (decoder and prior
  gradients dropped) per joint step, until the validation MI stops increasing; ``"auto"`` switches it on
  when fewer than d_z/4 units are active at a validation (validation molecules come from the
  training data, never from a test set);
* re-seeding of dead mixture components (usage < ``reseed_threshold``/K on the validation subset): the
  component moves to the encoder mean of a random molecule (VQ-style restart).

Components are injected as built modules: ``VAEModel(config, representation=tok, encoder=..., prior=...,
backbone=...)`` (:meth:`VAEModel.build_components` builds them from the config's ``encoder`` / ``prior`` /
``backbone`` specs: the configuration edge). The model is the model only: what acts around its training
steps is a Lightning callback it declares in ``default_callbacks`` (:mod:`molgen.training.callbacks`):
:class:`~molgen.training.callbacks.VAEDiagnostics` (diagnostics of ``vae_diagnostics.py`` at every
validation on a fixed subset, kept in ``self.diagnostics_history``; collapse alarms as warnings and flags;
a PNG + JSON at the end), :class:`~molgen.training.callbacks.AggressiveEncoderPhase` and
:class:`~molgen.training.callbacks.DeadComponentReseeding`. KL annealing, free bits, prior fitting and
word dropout are terms of the objective and stay in ``training_step``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from molgen.chem import DEFAULT_POLICY, Policy, standardize
from molgen.encoders.base import Encoder
from molgen.errors import CollapseWarning, ConfigError, check_choice, strict
from molgen.likelihood import resolve_k_kind, row_randn, row_seeds
from molgen.models.autoregressive import StringDecoding
from molgen.models.base import GenerativeModel, SampleResult
from molgen.models.config import ModelConfig
from molgen.models.init_from import copy_transformer_weights
from molgen.models.priors import Prior, VampPrior, build_prior, diag_normal_log_prob, reparameterize
from molgen.models.results import canonical_rows
from molgen.models.vae_diagnostics import final_diagnostics
from molgen.nn.transformer import KVCache
from molgen.registry import BACKBONES, ENCODERS, MODELS
from molgen.rowrandom import RowRandom
from molgen.scoring import as_smiles_list
from molgen.training.callbacks import AggressiveEncoderPhase, DeadComponentReseeding, VAEDiagnostics
from molgen.training.optim import adamw_warmup_cosine, progress_fraction
from molgen.training.progress import log_due

log = logging.getLogger(__name__)

__all__ = ["CollapseWarning", "VAEConfig", "VAEModel"]

#: the decoder's token t of a sampled row comes from the row's random stream DECODER_STREAM + t
#: (streams 0 and 1: the latent point, from the prior or, in the GAN, from the generator).
DECODER_STREAM = 2
#: decoders p(x|z): a GRU (z as initial state, at every input and at the output) or a causal transformer
#: (z as a prefix slot before <bos> and added to every input position: the transformer family's backbone,
#: so it can start from a trained transformer with ``init_from``)
DECODERS = ("gru", "transformer")


@dataclass
class VAEConfig(ModelConfig):
    """Hyperparameters of the VAE. ``encoder`` / ``prior`` are registry specs (``encoder.hidden``,
    ``prior.n_components``, ...); the rest are the decoder, the safeguards and the estimators."""

    COMPONENTS = ("encoder", "prior", "backbone")

    d_z: int = 32
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "sequence", "args": {}})
    prior: dict[str, Any] = field(default_factory=lambda: {"name": "mog", "args": {}})
    # decoder p(x|z): "gru" (emb_dim, dec_hidden, dec_layers, dropout) or "transformer" (``backbone``, the
    # transformer family's spec, so ``init_from`` can start it from a trained transformer)
    decoder: str = "gru"
    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "transformer", "args": {}})
    emb_dim: int = 64
    dec_hidden: int = 256
    dec_layers: int = 1
    dropout: float = 0.0
    # safeguards
    kl_anneal: str = "cyclical"
    kl_cycles: int = 4
    kl_ratio: float = 0.5
    beta_max: float = 1.0  # the schedule's top (< 1: reconstruction first); evaluation always uses beta = 1
    free_bits: float | None = None  # None: 0.25 * d_z nats on the total KL
    fit_prior: bool = True  # the prior also maximises log p(z) of detached posterior samples (see training_step)
    word_dropout: float = 0.1
    aggressive: str = "auto"
    aggressive_inner: int = 4
    aggressive_max_steps: int = 2000
    reseed_dead: bool = True
    reseed_threshold: float = 0.1
    # estimators
    kl_samples: int = 8
    eval_kl_samples: int = 64
    elbo_samples: int = 8
    iwae_k: int = 50
    iwae_chunk: int = 25
    mc_seed: int = 0  # salt of the per-molecule Monte-Carlo seeds
    diag_size: int = 2000
    recon_size: int = 500  # validation molecules whose greedy reconstruction is checked (0: off)
    mi_threshold: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_choice("kl_anneal", self.kl_anneal, ("cyclical", "monotonic", "none"))
        check_choice("aggressive", self.aggressive, ("off", "on", "auto"))
        check_choice("decoder", self.decoder, DECODERS)
        if not 0 < float(self.beta_max) <= 1:
            raise ConfigError(f"beta_max must be in (0, 1], got {self.beta_max!r}")
        for name in ("d_z", "iwae_k", "iwae_chunk", "elbo_samples", "kl_samples", "eval_kl_samples"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.free_bits is None:
            self.free_bits = 0.25 * self.d_z


@dataclass
class GraphItem:
    """One featurized molecule for a graph encoder: decoder token ids + the PyG graph."""

    ids: list[int]
    graph: Any

    @property
    def n_tokens(self) -> int:
        return len(self.ids) + 1  # symbols + EOS, as scored




@MODELS.register("vae")
class VAEModel(GenerativeModel):
    """VAE with injected encoder (sequence | graph) and prior (gaussian | mog | vamp | flow)."""

    name = "vae"
    capabilities = frozenset({"sample", "log_likelihood", "encode", "decode"})
    config_class = VAEConfig

    def __init__(self, config: VAEConfig, *, representation: Any, policy: Policy = DEFAULT_POLICY,
                 encoder: Encoder | None = None, prior: Prior | None = None, backbone: nn.Module | None = None) -> None:
        """``encoder`` q(z|x), ``prior`` p(z) and, for ``decoder: transformer``, the decoder's ``backbone``:
        built modules (:meth:`build_components` makes them from the config's specs; given none, the
        constructor calls it). The config's specs are what a saved model records: a module they do not
        describe trains and samples, but its directory will not load."""
        super().__init__(config, representation=representation, policy=policy)
        if representation is None:
            raise ConfigError("the VAE needs a fitted tokenizer as its representation (its decoder writes strings)")
        tok = representation
        V, c = tok.vocab_size, config
        wants_backbone = c.decoder == "transformer"
        if encoder is None and prior is None and backbone is None:
            parts = self.build_components(config, representation)
            encoder, prior, backbone = parts["encoder"], parts["prior"], parts.get("backbone")
        if encoder is None or prior is None or (backbone is not None) != wants_backbone:
            raise ConfigError("give the VAE all its components or none: encoder, prior"
                              + (" and backbone (decoder: transformer)" if wants_backbone else
                                 " (no backbone: the decoder is a GRU)"))
        if int(prior.d_z) != int(c.d_z):
            raise ConfigError(f"the prior is over {prior.d_z} latent dimensions, the VAE's d_z is {c.d_z}")
        self.strings = StringDecoding(tok, config.max_len)
        self.encoder = encoder
        self.featurize_cacheable = self.encoder.input_kind == "ids"  # graphs are rebuilt, not cached
        self.prior = prior
        if isinstance(self.prior, VampPrior):
            self.prior.bind(self.encoder.head)
        if wants_backbone:
            # z enters twice (as Optimus, Li et al. 2020): as a prefix slot before <bos> that every position
            # attends to in every layer ("memory"), and added to every input embedding. Both projections
            # start small (N(0, 0.02), the backbone's own init), not zero: W = 0 gives the encoder no gradient.
            self.net = backbone
            self.z_prefix = nn.Linear(c.d_z, self.net.cfg.d_model)
            self.z_proj = nn.Linear(c.d_z, self.net.cfg.d_model)
            for lin in (self.z_prefix, self.z_proj):
                nn.init.normal_(lin.weight, 0.0, 0.02)
                nn.init.zeros_(lin.bias)
        else:
            # GRU with z as initial state, at every input step and at the output layer.
            self.dec_emb = nn.Embedding(V, c.emb_dim, padding_idx=tok.pad_id)
            self.z_to_h = nn.Linear(c.d_z, c.dec_hidden * c.dec_layers)
            self.dec_rnn = nn.GRU(c.emb_dim + c.d_z, c.dec_hidden, c.dec_layers, batch_first=True,
                                  dropout=c.dropout if c.dec_layers > 1 else 0.0)
            self.dec_out = nn.Linear(c.dec_hidden + c.d_z, V)
        #: one latent-diagnostics entry per validation of a fit (filled by :class:`VAEDiagnostics`; not saved)
        self.diagnostics_history: list[dict[str, Any]] = []

    @classmethod
    def build_components(cls, config: VAEConfig, representation: Any) -> dict[str, Any]:
        """``encoder`` and ``prior`` (and ``backbone`` for ``decoder: transformer``) from the config's specs,
        wired to the tokenizer (vocabulary, pad id), d_z and the encoder's feature width."""
        if representation is None:
            raise ConfigError("the VAE needs a fitted tokenizer as its representation (its decoder writes strings)")
        V, c = representation.vocab_size, config
        encoder = ENCODERS.build(c.encoder, vocab_size=V, d_z=c.d_z, pad_id=representation.pad_id)
        parts = {"encoder": encoder, "prior": build_prior(c.prior, c.d_z, feature_dim=encoder.feature_dim)}
        if c.decoder == "transformer":
            parts["backbone"] = BACKBONES.build(c.backbone, vocab_size=V, max_positions=c.max_len + 1, causal=True)
        return parts

    def default_callbacks(self) -> list[Any]:
        """Latent diagnostics at every validation, then the safeguards that act on them (aggressive encoder
        phase, re-seeding of dead mixture components): :mod:`molgen.training.callbacks`."""
        aggressive = AggressiveEncoderPhase()
        return [VAEDiagnostics(safeguards=[aggressive, DeadComponentReseeding()]), aggressive]

    @property
    def d_z(self) -> int:
        return int(self.config.d_z)

    # --- featurization -------------------------------------------------------------------------
    def featurize(self, canonical_smiles: str) -> Any:
        ids = self.strings.featurize(canonical_smiles)
        if self.encoder.input_kind != "graph":
            return ids
        return GraphItem(ids, self.encoder.featurize(canonical_smiles))  # TokenizeError if RDKit cannot

    def item_length(self, item: Any) -> int:
        return len(item.ids) if isinstance(item, GraphItem) else len(item)

    def collate(self, items: Sequence[Any]) -> dict[str, Any]:
        if items and isinstance(items[0], GraphItem):
            out: dict[str, Any] = self.strings.collate([x.ids for x in items])
            out["graph"] = self.encoder.collate([x.graph for x in items])
            return out
        return self.strings.collate(items)

    # --- decoder p(x|z) ------------------------------------------------------------------------
    def _h0(self, z: Tensor) -> Tensor:
        L, H = self.config.dec_layers, self.config.dec_hidden
        return torch.tanh(self.z_to_h(z)).view(z.shape[0], L, H).transpose(0, 1).contiguous()

    def log_px_given_z(self, z: Tensor, ids: Tensor, word_dropout: float = 0.0) -> Tensor:
        """[N] log p(x|z) (teacher forcing); ``word_dropout`` > 0 only for the training objective."""
        inp = ids[:, :-1]
        pad, unk = self.tokenizer.pad_id, self.tokenizer.unk_id
        if word_dropout > 0:
            drop = (torch.rand(inp.shape, device=inp.device) < word_dropout) & (inp != pad)
            drop[:, 0] = False  # keep BOS
            inp = inp.masked_fill(drop, unk)
        if self.config.decoder == "transformer":
            T = inp.shape[1]
            x = torch.cat([inp[:, :1], inp], 1)  # the prefix slot: <bos>'s embedding + W_p z, at position 0
            offset = torch.cat([self.z_prefix(z)[:, None, :], self.z_proj(z)[:, None, :].expand(-1, T, -1)], 1)
            pos = torch.cat([torch.zeros(1, dtype=torch.long, device=inp.device),
                             torch.arange(T, device=inp.device)])
            logits = self.net(x, offset=offset, position_ids=pos)[:, 1:]
        else:
            zt = z.unsqueeze(1).expand(-1, inp.shape[1], -1)
            out, _ = self.dec_rnn(torch.cat([self.dec_emb(inp), zt], -1), self._h0(z))
            logits = self.dec_out(torch.cat([out, zt], -1))
        return self.strings.token_log_probs(logits, ids)[0].sum(-1)

    def _decoder_step(self, z: Tensor):
        """The next-token logits function ``step(cur, t)`` of p(x|z) for latent rows z (a KV cache for the
        transformer decoder, a hidden state for the GRU)."""
        if self.config.decoder == "transformer":
            cache = KVCache(self.net.cfg, z.shape[0], z.device, next(self.parameters()).dtype, extra=1)
            zero = torch.zeros(1, dtype=torch.long, device=z.device)
            bos = torch.full((z.shape[0], 1), self.tokenizer.bos_id, dtype=torch.long, device=z.device)
            self.net(bos, cache, offset=self.z_prefix(z)[:, None, :], position_ids=zero)  # the prefix slot
            zp = self.z_proj(z)[:, None, :]

            def step(cur: Tensor, t: int) -> Tensor:
                return self.net(cur[:, None], cache, offset=zp, position_ids=zero + t)[:, -1]
            return step
        state = {"h": self._h0(z)}

        def gru_step(cur: Tensor, t: int) -> Tensor:
            o, state["h"] = self.dec_rnn(torch.cat([self.dec_emb(cur), z], -1).unsqueeze(1), state["h"])
            return self.dec_out(torch.cat([o[:, 0], z], -1))
        return gru_step

    @torch.no_grad()
    def _decode_ids(self, z: Tensor, temperature: float = 1.0, rng: RowRandom | None = None,
                    greedy: bool = False, first_stream: int = DECODER_STREAM) -> Tensor:
        """x ~ p(x|z) (or argmax with ``greedy``): token t of row i from stream ``first_stream + t`` of row i."""
        ids, _ = self.strings.sample(self._decoder_step(z), z.shape[0], device=z.device, rng=rng,
                                     temperature=temperature, greedy=greedy, first_stream=first_stream)
        return ids

    @torch.no_grad()
    def sample_decoder(self, z: Tensor, rng: RowRandom | None, *, temperature: float = 1.0, greedy: bool = False,
                       first_stream: int = DECODER_STREAM) -> list[str]:
        """Strings x ~ p(x|z) for latent rows z [n, d_z] (the GAN's decoder), row i from ``rng``'s streams
        ``first_stream + t`` of row i (``rng`` may be None with ``greedy``)."""
        was = self.training
        self.eval()
        try:
            return self.strings.decode(self._decode_ids(z.to(self.device), temperature, rng, greedy, first_stream))
        finally:
            self.train(was)

    def init_from_transformer(self, source: GenerativeModel) -> dict[str, Any]:
        """Start the transformer decoder from a trained transformer (its language model, plus the small
        initial z projections). See :func:`~molgen.models.init_from.copy_transformer_weights`."""
        if self.config.decoder != "transformer":
            raise ConfigError("init_from starts the VAE's transformer decoder: set decoder: transformer "
                              f"(this VAE's decoder is {self.config.decoder!r})")
        return copy_transformer_weights(self, source, family="VAE")

    # --- bounds --------------------------------------------------------------------------------
    @classmethod
    def likelihood_kind(cls, config: ModelConfig, kind: str | None = None) -> str:
        return resolve_k_kind(kind, prefix="iwae", default_k=config.iwae_k, fixed=("elbo",), family="the VAE")

    def log_likelihood(self, batch: dict[str, Any], *, kind: str | None = None) -> Tensor:
        """[B] lower bound on log p(x) in nats: IWAE-K (default) or the beta = 1 ELBO."""
        kind = self.likelihood_kind(self.config, kind)
        if kind == "elbo":
            return self.elbo(batch)
        return self.iwae(batch, int(kind.split("-")[1]))

    def _row_seeds(self, batch: dict[str, Any]) -> list[int]:
        return row_seeds(batch["ids"], self.representation, salt=self.config.mc_seed)

    def elbo(self, batch: dict[str, Any], n_z: int | None = None, kl_samples: int | None = None) -> Tensor:
        """[B] plain ELBO: mean over ``n_z`` samples of log p(x|z) minus KL (MC with ``kl_samples``)."""
        n_z = n_z or self.config.elbo_samples
        s = kl_samples or self.config.eval_kl_samples
        seeds = self._row_seeds(batch)
        mu, logvar = self.encoder(batch)
        eps = row_randn(seeds, (n_z, self.d_z), mu.device, mu.dtype).transpose(0, 1)  # [n_z, B, d]
        rec = torch.stack([lx for lx in self._chunked_log_px(mu, logvar, batch["ids"], eps)]).mean(0)
        eps_kl = row_randn(seeds, (s, self.d_z), mu.device, mu.dtype, offset=1).transpose(0, 1)
        return rec - self.prior.kl(mu, logvar, s, eps=eps_kl)

    def _chunked_log_px(self, mu: Tensor, logvar: Tensor, ids: Tensor, eps: Tensor):
        """Yield log p(x|z_k) [B] for z_k = mu + sigma eps_k, decoded ``iwae_chunk`` samples at a time."""
        B, T = ids.shape
        for s in range(0, eps.shape[0], self.config.iwae_chunk):
            e = eps[s:s + self.config.iwae_chunk]
            c = e.shape[0]
            z = reparameterize(mu, logvar, eps=e)  # [c, B, d]
            lx = self.log_px_given_z(z.reshape(c * B, -1), ids.unsqueeze(0).expand(c, B, T).reshape(c * B, T))
            yield from lx.view(c, B)

    def iwae(self, batch: dict[str, Any], k: int) -> Tensor:
        """[B] IWAE-K bound: log 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x), per-molecule noise."""
        mu, logvar = self.encoder(batch)
        eps = row_randn(self._row_seeds(batch), (k, self.d_z), mu.device, mu.dtype).transpose(0, 1)  # [k, B, d]
        lx = torch.stack(list(self._chunked_log_px(mu, logvar, batch["ids"], eps)))  # [k, B]
        z = reparameterize(mu, logvar, eps=eps)
        logw = lx + self.prior.log_prob(z) - diag_normal_log_prob(z, mu, logvar)
        return torch.logsumexp(logw, 0) - math.log(k)

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.optim)

    def beta(self) -> float:
        """KL weight now: cyclical (M cycles, ramp over ``kl_ratio`` of each), monotonic, or 1.

        Reads the training-progress fraction (steps, time or molecules budget; 1.0 outside training)."""
        mode = self.config.kl_anneal
        if mode == "none":
            return float(self.config.beta_max)
        p = progress_fraction(self)
        if p >= 1.0:
            return float(self.config.beta_max)
        m = self.config.kl_cycles if mode == "cyclical" else 1
        tau = (p * m) % 1.0
        return float(self.config.beta_max * min(1.0, tau / self.config.kl_ratio))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        mu, logvar = self.encoder(batch)
        z = reparameterize(mu, logvar)
        rec = self.log_px_given_z(z, batch["ids"], self.config.word_dropout)
        kl = self.prior.kl(mu, logvar, self.config.kl_samples)
        kl_mean = kl.mean()
        kl_term = kl_mean.clamp_min(self.config.free_bits) if self.config.free_bits > 0 else kl_mean
        beta = self.beta()
        loss = -rec.mean() + beta * kl_term
        if self.config.fit_prior:
            # The prior follows the aggregate posterior whatever beta and free bits do to the KL's gradient:
            # max E_q(z) log p(z) = min KL(q(z) || p(z)) + const, the prior holes of "ELBO surgery".
            loss = loss - self.prior.log_prob(z.detach()).mean()
        if log_due(self):
            bs = mu.shape[0]
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
            self.log("train/rec", rec.mean().detach(), batch_size=bs)
            self.log("train/kl", kl_mean.detach(), prog_bar=True, batch_size=bs)
            self.log("train/beta", beta, batch_size=bs)
        return loss

    def generative_parameters(self) -> list[nn.Parameter]:
        """The decoder's and the prior's parameters (what the aggressive encoder phase holds still)."""
        if self.config.decoder == "transformer":
            mods = [self.net, self.z_prefix, self.z_proj, self.prior]
        else:
            mods = [self.dec_emb, self.z_to_h, self.dec_rnn, self.dec_out, self.prior]
        return [p for m in mods for p in m.parameters()]

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    # --- validation ----------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        """Logs the beta = 1 bound's terms; returns the posteriors and per-molecule terms (``mu``, ``logvar``,
        ``rec``, ``kl``, ``h``) for :class:`~molgen.training.callbacks.VAEDiagnostics`."""
        g = self._generator(batch_idx)
        h = self.encoder.features(batch)
        mu, logvar = self.encoder.head(h)
        rec = self.log_px_given_z(reparameterize(mu, logvar, generator=g), batch["ids"])
        kl = self.prior.kl(mu, logvar, self.config.eval_kl_samples, g)
        elbo = rec - kl
        bs = mu.shape[0]
        self.log("val/elbo", elbo.mean(), batch_size=bs, sync_dist=True)
        self.log("val/nll", -elbo.mean(), prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/rec", rec.mean(), batch_size=bs, sync_dist=True)
        self.log("val/kl", kl.mean(), batch_size=bs, sync_dist=True)
        return {"mu": mu, "logvar": logvar, "rec": rec, "kl": kl, "h": h}

    def final_diagnostics(self, smiles: Sequence[str]) -> dict[str, Any]:
        """What ``metadata.json`` and ``molgen info`` keep about the trained latent, on (at most
        ``diag_size``) validation molecules: active units, I(x; z) and greedy reconstruction accuracy
        (:func:`molgen.models.vae_diagnostics.final_diagnostics`)."""
        return final_diagnostics(self, smiles)

    @torch.no_grad()
    def reseed_dead_components(self, buf: dict[str, Tensor], diag: dict[str, Any]) -> int:
        """Move components with usage < reseed_threshold/K to random molecules' posteriors; returns count."""
        k = self.prior.n_components
        if k <= 1 or "usage" not in diag:
            return 0
        usage = torch.tensor(diag["usage"])
        dead = (usage < self.config.reseed_threshold / k).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        g = self._generator(len(self.diagnostics_history))
        n = buf["mu"].shape[0]
        if n >= dead.numel():
            pick = torch.randperm(n, generator=g, device=buf["mu"].device)[: dead.numel()]
        else:  # fewer validation molecules than dead components: molecules are reused
            pick = torch.randint(0, n, (dead.numel(),), generator=g, device=buf["mu"].device)
        if isinstance(self.prior, VampPrior):
            self.prior.reseed(dead, buf["h"][pick])
        else:
            alive = (usage >= self.config.reseed_threshold / k).to(self.prior.log_scales.device)
            scale = self.prior.log_scales[alive].mean(0) if bool(alive.any()) else self.prior.log_scales.mean(0)
            self.prior.reseed(dead.to(self.prior.means.device), buf["mu"][pick], scale.expand(dead.numel(), -1))
        diag["reseeded"] = int(dead.numel())
        log.info("VAE: re-seeded %d dead mixture component(s)", dead.numel())
        return int(dead.numel())

    # --- sampling / encode / decode ------------------------------------------------------------
    def _sample(self, n: int, *, temperature: float, rng: RowRandom, condition=None, guidance=None,
                constrain=None) -> tuple[list[str], None]:
        """z ~ p(z), x ~ p(x|z) (sampled, never argmax: that is ``decode(z, greedy=True)``). Streams of a
        row: 0 the prior's component, 1 its Gaussian noise, ``DECODER_STREAM + t`` the decoder's token t."""
        self._refuse_constrain(constrain)
        z = self.prior.sample(n, rng, stream=0).to(self.device)
        return self.strings.decode(self._decode_ids(z, temperature, rng)), None

    @torch.no_grad()
    @strict
    def encode(self, smiles: Sequence[str | None], *, return_logvar: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Posterior means mu(x) [N, d_z], row-aligned (NaN rows for molecules that cannot be featurized)."""
        smiles = as_smiles_list(smiles)
        was = self.training
        self.eval()
        mu = torch.full((len(smiles), self.d_z), float("nan"))
        lv = torch.full((len(smiles), self.d_z), float("nan"))
        items, idx = [], []
        for i, s in enumerate(smiles):
            can, _ = standardize(s, self.policy)
            if can is None:
                continue
            try:
                items.append(self.featurize(can))
                idx.append(i)
            except (KeyError, ValueError):  # OOVError / TooLongError / TokenizeError: stays NaN
                continue
        try:
            for s in range(0, len(items), 256):
                batch = self.collate(items[s:s + 256])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                m, v = self.encoder(batch)
                mu[idx[s:s + 256]] = m.float().cpu()
                lv[idx[s:s + 256]] = v.float().cpu()
        finally:
            self.train(was)
        return (mu, lv) if return_logvar else mu

    @torch.no_grad()
    @strict
    def decode(self, z: Tensor, *, greedy: bool = False, temperature: float = 1.0,
               seed: int | None = None) -> SampleResult:
        """Strings from latent points z [N, d_z] (or one [d_z]): x ~ p(x|z) by default, row i from its own
        random streams keyed by ``(seed, i)``; ``greedy=True`` is argmax decoding, labelled ``sampler="greedy"``."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.dim() == 1:
            z = z[None]
        if z.dim() != 2 or z.shape[1] != self.d_z:
            raise ConfigError(f"decode expects z of shape [N, {self.d_z}] (or [{self.d_z}]), got {list(z.shape)}")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature!r}")
        was = self.training
        self.eval()
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        try:  # row i of z decoded from the streams of row i of the seed: as in sample(seed=seed)
            ids = self._decode_ids(z.to(self.device), temperature, RowRandom(seed, range(len(z)), self.device),
                                   greedy)
        finally:
            self.train(was)
        smiles, canonical = canonical_rows(self.strings.decode(ids), self.policy)
        sampler = "greedy" if greedy else ("ancestral" if temperature == 1.0 else f"ancestral-T{temperature:g}")
        return SampleResult(smiles, canonical, None, temperature, sampler, seed, None,
                            info={"model": self.name, "decoder": "argmax" if greedy else "sampled"})

    @strict
    def interpolate(self, smiles_a: str, smiles_b: str, n_steps: int = 8, *, spherical: bool = False,
                    greedy: bool = False, seed: int = 0) -> pd.DataFrame:
        """Decode points on the line (or great circle) between the posterior means of two molecules."""
        mu = self.encode([smiles_a, smiles_b])
        if torch.isnan(mu).any():
            raise ValueError("both molecules must be valid and representable by the model")
        a, b = mu[0], mu[1]
        ts = torch.linspace(0, 1, n_steps)
        if spherical:
            omega = torch.arccos(torch.clamp(torch.nn.functional.cosine_similarity(a, b, dim=0), -1 + 1e-6, 1 - 1e-6))
            zs = torch.stack([(torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
                              for t in ts])
        else:
            zs = torch.stack([(1 - t) * a + t * b for t in ts])
        res = self.decode(zs, greedy=greedy, seed=seed)
        return pd.DataFrame({"t": ts.numpy().astype(np.float64), "smiles": res.smiles, "canonical": res.canonical,
                             "decoder": res.info["decoder"]})
