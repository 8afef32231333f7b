"""Mixture-prior VAE over SMILES/SELFIES strings with posterior-collapse safeguards.

    q(z|x) = N(mu(x), diag sigma^2(x))   encoder: bi-GRU over tokens ("sequence") or GATv2 GNN ("graph")
    p(z)                                 prior: "gaussian" N(0, I) | "mog" (K learned Gaussians) | "vamp"
    p(x|z) = prod_t p(x_t | x_<t, z)     GRU decoder; z sets the initial state and is concatenated to
                                         every input embedding and to the output layer (skip connections)

p(x|z) is a proper distribution over token strings (pad/bos/unk banned, EOS forced after ``max_len``
symbols), so the bounds below are bounds on log p(string) in nats per molecule:

    ELBO(x)   = E_q log p(x|z) - KL(q(z|x) || p(z))         (KL closed form for N(0,I), else MC, priors.py)
    IWAE-K(x) = E log 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)  (>= ELBO, increases with K, chunked)

``score`` reports IWAE-K (``likelihood_label()`` says ``iwae-K``); ``score(..., kind="elbo")`` the ELBO.
Both are deterministic given ``seed`` (default 0). Evaluation always uses the plain beta = 1 bound.

Training objective (not the ELBO when safeguards are on): ``-E_q log p(x~|z) + beta_t * FB(KL)`` with

* cyclical KL annealing (``kl_anneal="cyclical"``, M = ``kl_cycles`` cycles, ramp fraction ``kl_ratio``,
  training ends at beta = 1), ``"monotonic"`` (one ramp) or ``"none"`` (beta = 1 from step 0);
* free bits: FB(KL) = max(``free_bits``, batch-mean KL), one group (the total KL; default 0.25 d_z nats);
* word dropout: decoder inputs replaced by <unk> with probability ``word_dropout`` (training only);
* aggressive encoder phase (He et al. 2019): ``aggressive_inner`` encoder-only steps (decoder and prior
  gradients dropped) per joint step, until the validation MI stops increasing; ``"auto"`` switches it on
  when fewer than d_z/4 units are active at a validation;
* re-seeding of dead mixture components (usage < ``reseed_threshold``/K on the validation subset): the
  component moves to the encoder mean of a random molecule (VQ-style restart).

Diagnostics (``vae_diagnostics.py``) run at every validation on a fixed subset and are kept in
``self.diagnostics_history``; collapse alarms are warnings and flags; a PNG + JSON is written at the end.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molgen.chem import DEFAULT_POLICY, Policy, standardize
from molgen.models.base import GenerativeModel, SampleResult, TooLongError, collate_ids
from molgen.models.priors import VampPrior, build_prior, diag_normal_log_prob, reparameterize
from molgen.models.vae_diagnostics import latent_diagnostics, plot_history
from molgen.registry import ENCODERS, MODELS
from molgen.tokenizers.base import TokenizeError, Tokenizer

log = logging.getLogger(__name__)


class CollapseWarning(UserWarning):
    """Posterior collapse (z ignored) or mixture collapse (few components used) was detected."""


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
    """VAE with injected encoder (sequence | graph) and prior (gaussian | mog | vamp)."""

    name = "vae"
    capabilities = frozenset({"sample", "log_likelihood", "encode", "decode"})
    likelihood_kind = "elbo"

    def __init__(self, tokenizer: Tokenizer, policy: Policy = DEFAULT_POLICY, max_len: int = 100, *,
                 encoder: str = "sequence", prior: str = "mog", d_z: int = 32, n_components: int = 8,
                 learn_weights: bool = False, emb_dim: int = 64, enc_hidden: int = 128, enc_layers: int = 1,
                 graph_layers: int = 3, graph_heads: int = 4, graph_conv: str = "gatv2",
                 dec_hidden: int = 256, dec_layers: int = 1, dropout: float = 0.0,
                 kl_anneal: str = "cyclical", kl_cycles: int = 4, kl_ratio: float = 0.5,
                 free_bits: float | None = None, word_dropout: float = 0.1, aggressive: str = "auto",
                 aggressive_inner: int = 4, aggressive_max_steps: int = 2000, reseed_dead: bool = True,
                 reseed_threshold: float = 0.1, kl_samples: int = 8, eval_kl_samples: int = 64,
                 elbo_samples: int = 8, iwae_k: int = 50, iwae_chunk: int = 25, diag_size: int = 2000,
                 mi_threshold: float = 1.0) -> None:
        super().__init__(tokenizer, policy, max_len)
        if kl_anneal not in ("cyclical", "monotonic", "none"):
            raise ValueError(f"kl_anneal must be cyclical | monotonic | none, got {kl_anneal!r}")
        if aggressive not in ("off", "on", "auto"):
            raise ValueError(f"aggressive must be off | on | auto, got {aggressive!r}")
        free_bits = 0.25 * d_z if free_bits is None else float(free_bits)
        self.hp: dict[str, Any] = dict(
            encoder=encoder, prior=prior, d_z=d_z, n_components=n_components, learn_weights=learn_weights,
            emb_dim=emb_dim, enc_hidden=enc_hidden, enc_layers=enc_layers, graph_layers=graph_layers,
            graph_heads=graph_heads, graph_conv=graph_conv, dec_hidden=dec_hidden, dec_layers=dec_layers,
            dropout=dropout, kl_anneal=kl_anneal, kl_cycles=kl_cycles, kl_ratio=kl_ratio, free_bits=free_bits,
            word_dropout=word_dropout, aggressive=aggressive, aggressive_inner=aggressive_inner,
            aggressive_max_steps=aggressive_max_steps, reseed_dead=reseed_dead,
            reseed_threshold=reseed_threshold, kl_samples=kl_samples, eval_kl_samples=eval_kl_samples,
            elbo_samples=elbo_samples, iwae_k=iwae_k, iwae_chunk=iwae_chunk, diag_size=diag_size,
            mi_threshold=mi_threshold)
        V = tokenizer.vocab_size
        enc_cls = ENCODERS.get(encoder)
        self.encoder = enc_cls(vocab_size=V, d_z=d_z, pad_id=tokenizer.pad_id, emb_dim=emb_dim,
                               hidden=enc_hidden, n_layers=enc_layers if encoder == "sequence" else graph_layers,
                               heads=graph_heads, conv=graph_conv, dropout=dropout)
        self.featurize_cacheable = self.encoder.input_kind == "ids"  # graphs are rebuilt, not cached
        self.prior = build_prior(prior, d_z, n_components=n_components, learn_weights=learn_weights,
                                 feature_dim=self.encoder.feature_dim)
        if isinstance(self.prior, VampPrior):
            self.prior.bind(self.encoder.head)
        # Decoder: GRU with z as initial state, at every input step and at the output layer.
        self.dec_emb = nn.Embedding(V, emb_dim, padding_idx=tokenizer.pad_id)
        self.z_to_h = nn.Linear(d_z, dec_hidden * dec_layers)
        self.dec_rnn = nn.GRU(emb_dim + d_z, dec_hidden, dec_layers, batch_first=True,
                              dropout=dropout if dec_layers > 1 else 0.0)
        self.dec_out = nn.Linear(dec_hidden + d_z, V)
        # Training-time state (not part of the saved model).
        self.diagnostics_history: list[dict[str, Any]] = []
        self._diag_buf: dict[str, list[Tensor]] = {}
        self._aggr_active = aggressive == "on"
        self._aggr_done = False
        self._aggr_start = 0
        self._aggr_last_mi = -math.inf
        self._label: str | None = None

    def config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, **self.hp}

    @property
    def d_z(self) -> int:
        return int(self.hp["d_z"])

    # --- featurization -------------------------------------------------------------------------
    def featurize(self, canonical_smiles: str) -> Any:
        ids = super().featurize(canonical_smiles)
        if self.encoder.input_kind != "graph":
            return ids
        from molgen.featurizers.graph import smiles_to_data

        try:
            g = smiles_to_data(canonical_smiles)
        except ValueError as e:
            raise TokenizeError(str(e)) from None
        return GraphItem(ids, g)

    def item_length(self, item: Any) -> int:
        return len(item.ids) if isinstance(item, GraphItem) else len(item)

    def collate(self, items: Sequence[Any]) -> dict[str, Any]:
        if items and isinstance(items[0], GraphItem):
            from torch_geometric.data import Batch

            out: dict[str, Any] = collate_ids([x.ids for x in items], self.tokenizer)
            out["graph"] = Batch.from_data_list([x.graph for x in items])
            return out
        return collate_ids(items, self.tokenizer)

    # --- decoder p(x|z) ------------------------------------------------------------------------
    def _h0(self, z: Tensor) -> Tensor:
        L, H = self.hp["dec_layers"], self.hp["dec_hidden"]
        return torch.tanh(self.z_to_h(z)).view(z.shape[0], L, H).transpose(0, 1).contiguous()


    def log_px_given_z(self, z: Tensor, ids: Tensor, word_dropout: float = 0.0) -> Tensor:
        """[N] log p(x|z) (teacher forcing); ``word_dropout`` > 0 only for the training objective."""
        inp, tgt = ids[:, :-1], ids[:, 1:]
        if word_dropout > 0:
            drop = (torch.rand(inp.shape, device=inp.device) < word_dropout) & (inp != self.tokenizer.pad_id)
            drop[:, 0] = False  # keep BOS
            inp = inp.masked_fill(drop, self.tokenizer.unk_id)
        T = inp.shape[1]
        zt = z.unsqueeze(1).expand(-1, T, -1)
        out, _ = self.dec_rnn(torch.cat([self.dec_emb(inp), zt], -1), self._h0(z))
        logits = self.dec_out(torch.cat([out, zt], -1))
        pos = torch.arange(T, device=ids.device)
        logp = self.next_token_log_probs(logits, pos[None, :])
        tok_lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        return tok_lp.masked_fill(tgt == self.tokenizer.pad_id, 0.0).sum(-1)

    @torch.no_grad()
    def _decode_ids(self, z: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
                    greedy: bool = False) -> list[list[int]]:
        tok = self.tokenizer
        n = z.shape[0]
        h = self._h0(z)
        cur = torch.full((n,), tok.bos_id, dtype=torch.long, device=z.device)
        done = torch.zeros(n, dtype=torch.bool, device=z.device)
        out = []
        for t in range(self.max_len + 1):
            o, h = self.dec_rnn(torch.cat([self.dec_emb(cur), z], -1).unsqueeze(1), h)
            logp = self.next_token_log_probs(self.dec_out(torch.cat([o[:, 0], z], -1)), t)
            if greedy:
                nxt = logp.argmax(-1)
            else:
                probs = F.softmax(logp / temperature, dim=-1) if temperature != 1.0 else logp.exp()
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            nxt = torch.where(done, torch.full_like(nxt, tok.pad_id), nxt)
            out.append(nxt)
            done |= nxt == tok.eos_id
            cur = nxt
            if bool(done.all()):
                break
        return [row.tolist() for row in torch.stack(out, 1).cpu()]

    # --- bounds --------------------------------------------------------------------------------
    def likelihood_label(self) -> str:
        return self._label or f"iwae-{self.hp['iwae_k']}"

    def score(self, smiles: Sequence[str | None], *, batch_size: int = 128, progress: bool = False,
              kind: str = "iwae", k: int | None = None, seed: int = 0, **kw: Any) -> pd.DataFrame:
        """Per-molecule IWAE-K bound (default, K = ``iwae_k``) or ELBO (``kind="elbo"``), labelled."""
        self._label = "elbo" if kind == "elbo" else f"iwae-{k or self.hp['iwae_k']}"
        try:
            return super().score(smiles, batch_size=batch_size, progress=progress, kind=kind, k=k, seed=seed,
                                 **kw)
        finally:
            self._label = None

    def log_likelihood(self, batch: dict[str, Any], kind: str = "iwae", k: int | None = None, seed: int = 0,
                       **kw: Any) -> Tensor:
        """[B] lower bound on log p(x) in nats: IWAE-K (default) or the beta = 1 ELBO."""
        if kind == "elbo":
            return self.elbo(batch, seed=seed)
        if kind != "iwae":
            raise ValueError(f"kind must be 'iwae' or 'elbo', got {kind!r}")
        return self.iwae(batch, k or self.hp["iwae_k"], seed=seed)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def elbo(self, batch: dict[str, Any], seed: int = 0, n_z: int | None = None,
             kl_samples: int | None = None) -> Tensor:
        """[B] plain ELBO: mean over ``n_z`` samples of log p(x|z) minus KL (MC with ``kl_samples``)."""
        g = self._generator(seed)
        mu, logvar = self.encoder(batch)
        rec = self._mean_rec(mu, logvar, batch["ids"], n_z or self.hp["elbo_samples"], g)
        return rec - self.prior.kl(mu, logvar, kl_samples or self.hp["eval_kl_samples"], g)

    def _mean_rec(self, mu: Tensor, logvar: Tensor, ids: Tensor, n_z: int, g: torch.Generator) -> Tensor:
        B, T = ids.shape
        total = torch.zeros(B, device=ids.device)
        for s in range(0, n_z, self.hp["iwae_chunk"]):
            c = min(self.hp["iwae_chunk"], n_z - s)
            z = reparameterize(mu, logvar, c, g)
            lx = self.log_px_given_z(z.reshape(c * B, -1), ids.unsqueeze(0).expand(c, B, T).reshape(c * B, T))
            total += lx.view(c, B).sum(0)
        return total / n_z

    def iwae(self, batch: dict[str, Any], k: int, seed: int = 0) -> Tensor:
        """[B] IWAE-K bound, importance samples drawn in chunks of ``iwae_chunk`` (logsumexp at the end)."""
        g = self._generator(seed)
        mu, logvar = self.encoder(batch)
        ids = batch["ids"]
        B, T = ids.shape
        logw = []
        for s in range(0, k, self.hp["iwae_chunk"]):
            c = min(self.hp["iwae_chunk"], k - s)
            z = reparameterize(mu, logvar, c, g)  # [c, B, d]
            lx = self.log_px_given_z(z.reshape(c * B, -1), ids.unsqueeze(0).expand(c, B, T).reshape(c * B, T))
            logw.append(lx.view(c, B) + self.prior.log_prob(z) - diag_normal_log_prob(z, mu, logvar))
        return torch.logsumexp(torch.cat(logw, 0), 0) - math.log(k)

    # --- training ------------------------------------------------------------------------------
    def _progress(self) -> float:
        """Fraction of training done (steps or wall-clock budget, as the LR schedule sees it)."""
        trainer = getattr(self, "_trainer", None)
        if trainer is None:
            return 1.0
        step = trainer.global_step
        for cb in trainer.callbacks:
            if hasattr(cb, "progress") and hasattr(cb, "warmup"):
                total = cb.total
                p = step / total if total else 0.0
                if getattr(cb, "max_time_s", None):
                    p = max(p, cb._train_time / cb.max_time_s)
                return min(1.0, p)
        if trainer.max_steps and trainer.max_steps > 0:
            return min(1.0, step / trainer.max_steps)
        try:
            return min(1.0, step / max(1, int(trainer.estimated_stepping_batches)))
        except Exception:
            return 1.0

    def beta(self) -> float:
        """KL weight now: cyclical (M cycles, ramp over ``kl_ratio`` of each), monotonic, or 1."""
        mode = self.hp["kl_anneal"]
        if mode == "none":
            return 1.0
        p = self._progress()
        if p >= 1.0:
            return 1.0
        m = self.hp["kl_cycles"] if mode == "cyclical" else 1
        tau = (p * m) % 1.0
        return float(min(1.0, tau / self.hp["kl_ratio"]))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        mu, logvar = self.encoder(batch)
        z = reparameterize(mu, logvar)
        rec = self.log_px_given_z(z, batch["ids"], self.hp["word_dropout"])
        kl = self.prior.kl(mu, logvar, self.hp["kl_samples"])
        kl_mean = kl.mean()
        kl_term = kl_mean.clamp_min(self.hp["free_bits"]) if self.hp["free_bits"] > 0 else kl_mean
        beta = self.beta()
        loss = -rec.mean() + beta * kl_term
        bs = mu.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/rec", rec.mean(), batch_size=bs)
        self.log("train/kl", kl_mean, prog_bar=True, batch_size=bs)
        self.log("train/beta", beta, batch_size=bs)
        self.log("train/aggressive", float(self._aggr_active), batch_size=bs)
        return loss

    def _generative_parameters(self) -> list[nn.Parameter]:
        mods = [self.dec_emb, self.z_to_h, self.dec_rnn, self.dec_out, self.prior]
        return [p for m in mods for p in m.parameters()]

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """Aggressive phase: only the encoder moves on ``aggressive_inner`` of every inner+1 steps."""
        if not self._aggr_active:
            return
        step = self.trainer.global_step
        if step - self._aggr_start >= self.hp["aggressive_max_steps"]:
            self._stop_aggressive("step budget reached")
            return
        if step % (self.hp["aggressive_inner"] + 1) != self.hp["aggressive_inner"]:
            for p in self._generative_parameters():
                p.grad = None

    def _start_aggressive(self) -> None:
        self._aggr_active, self._aggr_start = True, self.trainer.global_step if self._trainer else 0
        log.info("VAE: aggressive encoder phase on at step %d", self._aggr_start)

    def _stop_aggressive(self, why: str) -> None:
        if self._aggr_active:
            log.info("VAE: aggressive encoder phase off (%s)", why)
        self._aggr_active, self._aggr_done = False, True

    # --- validation + diagnostics --------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._diag_buf = {"mu": [], "logvar": [], "rec": [], "kl": [], "h": []}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        g = self._generator(batch_idx)
        h = self.encoder.features(batch)
        mu, logvar = self.encoder.head(h)
        rec = self.log_px_given_z(reparameterize(mu, logvar, generator=g), batch["ids"])
        kl = self.prior.kl(mu, logvar, self.hp["eval_kl_samples"], g)
        elbo = rec - kl
        bs = mu.shape[0]
        self.log("val/elbo", elbo.mean(), batch_size=bs, sync_dist=True)
        self.log("val/nll", -elbo.mean(), prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/rec", rec.mean(), batch_size=bs, sync_dist=True)
        self.log("val/kl", kl.mean(), batch_size=bs, sync_dist=True)
        have = sum(x.shape[0] for x in self._diag_buf.get("mu", []))
        if have < self.hp["diag_size"]:
            take = self.hp["diag_size"] - have
            for key, v in (("mu", mu), ("logvar", logvar), ("rec", rec), ("kl", kl), ("h", h)):
                self._diag_buf.setdefault(key, []).append(v[:take].detach().float())

    def on_validation_epoch_end(self) -> None:
        if not self._diag_buf.get("mu"):
            return
        buf = {k: torch.cat(v) for k, v in self._diag_buf.items()}
        diag = latent_diagnostics(self.prior, buf["mu"], buf["logvar"], buf["kl"], buf["rec"],
                                  mi_threshold=self.hp["mi_threshold"])
        step = self.trainer.global_step if self._trainer else 0
        diag.update(step=step, beta=self.beta(), aggressive=self._aggr_active)
        self.diagnostics_history.append(diag)
        for key in ("rec", "kl", "elbo", "active_units", "mi", "marginal_kl", "usage_perplexity",
                    "responsibility_entropy", "top_component_share"):
            if key in diag:
                self.log(f"val/{key}", float(diag[key]), sync_dist=True)
        self.log("val/posterior_collapse", float(diag["posterior_collapse"]))
        self.log("val/mixture_collapse", float(diag["mixture_collapse"]))
        if diag["mi_at_cap"]:
            log.info("VAE: MI %.2f nats is at its log N = %.2f cap (read it as 'at least')", diag["mi"],
                     diag["mi_cap"])
        self.warn_on_collapse(diag)
        self._maybe_aggressive(diag)
        if self.hp["reseed_dead"] and self.training_in_progress():
            self.reseed_dead_components(buf, diag)

    def training_in_progress(self) -> bool:
        """True inside ``trainer.fit`` (not a sanity check, not a stand-alone ``validate``)."""
        return self._trainer is not None and self.trainer.state.fn == "fit" and not self.trainer.sanity_checking

    def warn_on_collapse(self, diag: dict[str, Any]) -> None:
        """Explicit CollapseWarning when a diagnostics dict shows posterior or mixture collapse."""
        if diag["posterior_collapse"]:
            warnings.warn(
                f"VAE posterior collapse at step {diag.get('step')}: I(x;z) = {diag['mi']:.2f} nats, "
                f"KL = {diag['kl']:.2f} nats, {diag['active_units']}/{diag['d_z']} active units "
                "(z is ignored by the decoder; turn on free bits / KL annealing / aggressive phase)",
                CollapseWarning, stacklevel=2)
        if diag["mixture_collapse"]:
            warnings.warn(
                f"VAE mixture collapse at step {diag.get('step')}: usage perplexity "
                f"{diag['usage_perplexity']:.2f} of K = {diag['n_components']}, top component share "
                f"{diag['top_component_share']:.2f}", CollapseWarning, stacklevel=2)

    def _maybe_aggressive(self, diag: dict[str, Any]) -> None:
        mode = self.hp["aggressive"]
        if mode == "off" or self._aggr_done or self._trainer is None:
            return
        if self._aggr_active:
            if diag["mi"] <= self._aggr_last_mi + 1e-3:
                self._stop_aggressive("validation MI stopped increasing")
            self._aggr_last_mi = diag["mi"]
        elif mode == "auto" and diag["active_units"] < self.d_z / 4:
            self._start_aggressive()
            self._aggr_last_mi = diag["mi"]

    @torch.no_grad()
    def reseed_dead_components(self, buf: dict[str, Tensor], diag: dict[str, Any]) -> int:
        """Move components with usage < reseed_threshold/K to random molecules' posteriors; returns count."""
        k = self.prior.n_components
        if k <= 1 or "usage" not in diag:
            return 0
        usage = torch.tensor(diag["usage"])
        dead = (usage < self.hp["reseed_threshold"] / k).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        g = self._generator(len(self.diagnostics_history))
        pick = torch.randperm(buf["mu"].shape[0], generator=g, device=buf["mu"].device)[: dead.numel()]
        if isinstance(self.prior, VampPrior):
            self.prior.reseed(dead, buf["h"][pick])
        else:
            alive = (usage >= self.hp["reseed_threshold"] / k).to(self.prior.log_scales.device)
            scale = self.prior.log_scales[alive].mean(0) if bool(alive.any()) else self.prior.log_scales.mean(0)
            self.prior.reseed(dead.to(self.prior.means.device), buf["mu"][pick], scale.expand(dead.numel(), -1))
        diag["reseeded"] = int(dead.numel())
        log.info("VAE: re-seeded %d dead mixture component(s)", dead.numel())
        return int(dead.numel())

    def on_fit_end(self) -> None:
        """Write the diagnostics history as JSON and a PNG plot next to the training logs."""
        if not self.diagnostics_history or self._trainer is None:
            return
        root = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        root.mkdir(parents=True, exist_ok=True)
        (root / "vae_diagnostics.json").write_text(json.dumps(self.diagnostics_history, indent=1, default=float))
        try:
            plot_history(self.diagnostics_history, root / "vae_diagnostics.png")
        except Exception as e:  # a plotting failure must not lose a trained model
            log.warning("could not plot VAE diagnostics: %s", e)

    # --- sampling / encode / decode ------------------------------------------------------------
    def _sample_ids(self, n: int, temperature: float, generator: torch.Generator,
                    **kw: Any) -> tuple[list[list[int]], Tensor | None]:
        """z ~ p(z), x ~ p(x|z) (sampled, never argmax: that is ``decode(z, greedy=True)``)."""
        z = self.prior.sample(n, generator).to(self.device)
        return self._decode_ids(z, temperature, generator), None

    @torch.no_grad()
    def encode(self, smiles: Sequence[str], *, return_logvar: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Posterior means mu(x) [N, d_z] (NaN rows for molecules that cannot be featurized)."""
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
            except (KeyError, ValueError, TooLongError):
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
    def decode(self, z: Tensor, *, greedy: bool = False, temperature: float = 1.0,
               seed: int | None = None) -> SampleResult:
        """Strings from latent points: x ~ p(x|z) by default; ``greedy=True`` is argmax decoding (labelled)."""
        was = self.training
        self.eval()
        g = self._generator(seed if seed is not None else int(torch.seed() % (2**63)))
        try:
            ids = self._decode_ids(torch.as_tensor(z, dtype=torch.float32, device=self.device).reshape(-1, self.d_z),
                                   temperature, g, greedy)
        finally:
            self.train(was)
        smiles = [self.tokenizer.decode(x) for x in ids]
        canonical = [standardize(s, self.policy)[0] if s else None for s in smiles]
        return SampleResult(smiles, canonical, None, temperature, sampler="greedy" if greedy else "ancestral",
                            info={"seed": seed, "model": self.name, "decoder": "argmax" if greedy else "sampled"})

    def interpolate(self, smiles_a: str, smiles_b: str, n_steps: int = 8, *, spherical: bool = False,
                    greedy: bool = False, seed: int = 0) -> pd.DataFrame:
        """Decode points on the line (or great circle) between the posterior means of two molecules."""
        mu = self.encode([smiles_a, smiles_b])
        if torch.isnan(mu).any():
            raise ValueError("both molecules must be valid and representable by the model")
        a, b = mu[0], mu[1]
        ts = torch.linspace(0, 1, n_steps)
        if spherical:
            omega = torch.arccos(torch.clamp(F.cosine_similarity(a, b, dim=0), -1 + 1e-6, 1 - 1e-6))
            zs = torch.stack([(torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
                              for t in ts])
        else:
            zs = torch.stack([(1 - t) * a + t * b for t in ts])
        res = self.decode(zs, greedy=greedy, seed=seed)
        return pd.DataFrame({"t": ts.numpy().astype(np.float64), "smiles": res.smiles, "canonical": res.canonical,
                             "decoder": res.info["decoder"]})
