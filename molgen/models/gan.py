"""LatentGAN (Prykhodko et al. 2019; MOSES ``latentgan``): a WGAN-GP on the latent space of a trained VAE.

    data:      u = (mu(x) - m) / s        posterior means of the training molecules under the nested,
                                          frozen VAE (``vae.encode``), standardised per dimension
                                          (m, s: mean / std of the training latents, stored buffers)
    generator: u~ = G(eps), eps ~ N(0, I)  MLP, LayerNorm (or BatchNorm) + LeakyReLU
    critic:    D(u)                        MLP + LeakyReLU, no batch-dependent layers (optional spectral norm)
    samples:   x ~ p_VAE(x | z = m + s u~) decoded by *sampling* the VAE decoder (``decode="argmax"`` is
                                          the explicit, labelled alternative)

Loss (Gulrajani et al. 2017): L_D = E D(G(eps)) - E D(u) + lambda E_i (|grad D(u^_i)|_2 - 1)^2 with
u^_i = a_i u_i + (1 - a_i) G(eps_i) and the gradient norm taken **per sample**; L_G = -E D(G(eps)).
One critic step per batch, one generator step every ``n_critic`` batches, Adam (2e-4, betas 0.5 / 0.999)
for both (two optimisers, manual optimisation).

No likelihood: the generator is implicit (a push-forward of noise), so the family declares no
``"log_likelihood"``; judge it by FCD and the mode-dropping diagnostics (``molgen.metrics.modes``),
including the latent-bin occupancy tracked during training (``train/latent_bins_*``; GAN collapse comes
and goes, so it is logged every ``occupancy_every`` batches and kept in ``gan_diagnostics.json``) by the
:class:`~molgen.training.callbacks.LatentBinTracking` callback the family declares (``default_callbacks``).

The VAE is a nested model by role (``nested = {"autoencoder": NestedRole(...)}``): ``molgen train --model
gan --autoencoder DIR`` loads it, the saved GAN keeps it in ``nested/autoencoder/``.

Training molecules are encoded once, at the start of the fit. Molecules the VAE cannot represent are
refused by ``featurize`` (counted per status in the model's ``metadata["dropped"]``); rows that still
come back NaN from the encoder are counted in ``latent_info`` and left out of training, never silently.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.errors import ConfigError, check_choice, strict
from molgen.metrics.modes import Bins, bin_stats_at_equal_n
from molgen.models.base import GenerativeModel, NestedRole, SampleResult
from molgen.models.config import ModelConfig
from molgen.models.vae import DECODER_STREAM
from molgen.registry import MODELS
from molgen.rowrandom import RowRandom
from molgen.training.callbacks import LatentBinTracking
from molgen.training.progress import log_due

log = logging.getLogger(__name__)

__all__ = ["GANConfig", "LatentGAN", "gradient_penalty"]


@dataclass
class GANConfig(ModelConfig):
    """Hyperparameters of the LatentGAN (the latent size and the decoder come from the nested VAE)."""

    noise_dim: int = 64
    gen_hidden: list[int] = field(default_factory=lambda: [128, 256, 512])
    gen_norm: str = "layernorm"
    critic_hidden: list[int] = field(default_factory=lambda: [512, 256])
    spectral_norm: bool = False
    leaky_slope: float = 0.2
    n_critic: int = 5
    gp_weight: float = 10.0
    adam_lr: float = 2e-4
    adam_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    decode: str = "sample"
    occupancy_every: int = 200
    occupancy_n: int = 2000
    occupancy_bins: int = 64
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        check_choice("gen_norm", self.gen_norm, ("layernorm", "batchnorm"))
        check_choice("decode", self.decode, ("sample", "argmax"))
        check_choice("spectral_norm", self.spectral_norm, (False, True))
        for name in ("noise_dim", "n_critic", "occupancy_every", "occupancy_n", "occupancy_bins"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("gen_hidden", "critic_hidden"):
            v = getattr(self, name)
            if not isinstance(v, (list, tuple)) or not v or not all(isinstance(h, int) and h >= 1 for h in v):
                raise ConfigError(f"{name} must be a non-empty list of positive layer widths, got {v!r}")
        if not (isinstance(self.adam_betas, (list, tuple)) and len(self.adam_betas) == 2
                and all(0 <= b < 1 for b in self.adam_betas)):
            raise ConfigError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")
        if not self.adam_lr > 0 or self.gp_weight < 0 or self.leaky_slope < 0:
            raise ConfigError("adam_lr must be > 0, gp_weight >= 0 and leaky_slope >= 0")


def mlp_generator(noise_dim: int, hidden: Sequence[int], out_dim: int, norm: str, slope: float) -> nn.Sequential:
    """eps -> [Linear, norm, LeakyReLU] x len(hidden) -> Linear(out_dim). BatchNorm momentum is explicit
    (the MOSES generator's ``BatchNorm1d(n, 0.8)`` sets eps = 0.8, not the momentum)."""
    layers: list[nn.Module] = []
    d = noise_dim
    for h in hidden:
        norm_layer = nn.LayerNorm(h) if norm == "layernorm" else nn.BatchNorm1d(h, eps=1e-5, momentum=0.1)
        layers += [nn.Linear(d, h), norm_layer, nn.LeakyReLU(slope)]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def mlp_critic(in_dim: int, hidden: Sequence[int], slope: float, spectral: bool) -> nn.Sequential:
    """u -> [Linear, LeakyReLU] x len(hidden) -> Linear(1); no batch-dependent layer (each row's score
    depends on that row only, as the per-sample gradient penalty requires)."""
    sn = torch.nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [sn(nn.Linear(d, h)), nn.LeakyReLU(slope)]
        d = h
    layers.append(sn(nn.Linear(d, 1)))
    return nn.Sequential(*layers)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None
                     ) -> Tensor:
    """[B] per-sample penalty (|grad_u D(u^_i)|_2 - 1)^2 at u^_i = a_i real_i + (1 - a_i) fake_i, a_i ~ U(0, 1).

    The gradient of ``D(u^).sum()`` with respect to row i is that of ``D(u^_i)`` alone because the critic
    has no batch-dependent layer; the norm is taken per row (never over the batch)."""
    alpha = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype, generator=generator)
    x = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    with torch.enable_grad():
        out = critic(x)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return (grad.norm(2, dim=1) - 1.0).square()


@MODELS.register("gan")
class LatentGAN(GenerativeModel):
    """WGAN-GP on the standardised latent means of a nested, frozen molgen VAE; decodes with its decoder."""

    name = "gan"
    capabilities = frozenset({"sample"})
    config_class = GANConfig
    nested: ClassVar[dict[str, NestedRole]] = {"autoencoder": NestedRole(
        help="a trained VAE (encode + decode): the GAN models its latent means and writes strings with its decoder; "
             "reused frozen, saved with the GAN", requires=frozenset({"encode", "decode"}))}
    featurize_cacheable = False  # items are (SMILES, VAE input) pairs, encoded once at the start of the fit
    optim_options = ()  # two Adams from the config's adam_lr / adam_betas, no schedule
    no_likelihood_reason = ("an implicit model (a generator network pushing noise through a decoder) has no "
                            "density; judge it by FCD and the mode-dropping diagnostics")

    def __init__(self, config: GANConfig, *, representation: Any = None, policy: Policy = DEFAULT_POLICY,
                 autoencoder: GenerativeModel) -> None:
        if representation is not None:
            raise ConfigError("the GAN takes no representation of its own: it writes strings with its "
                              "autoencoder's decoder (pass representation=None)")
        super().__init__(config, representation=None, policy=policy)
        self._check_nested({"autoencoder": autoencoder})  # a model declaring encode and decode (a trained VAE)
        self.automatic_optimization = False
        self.autoencoder = autoencoder.eval()
        self.autoencoder.requires_grad_(False)
        d_z = int(autoencoder.config.d_z)
        c = config
        self.generator = mlp_generator(c.noise_dim, c.gen_hidden, d_z, c.gen_norm, c.leaky_slope)
        self.critic = mlp_critic(d_z, c.critic_hidden, c.leaky_slope, c.spectral_norm)
        self.register_buffer("z_mean", torch.zeros(d_z))
        self.register_buffer("z_std", torch.ones(d_z))
        # training-time state (not saved with the model)
        self.latent_info: dict[str, Any] = {}
        #: latent-bin statistics over training (filled by :class:`LatentBinTracking`)
        self.latent_history: list[dict[str, Any]] = []
        self._table: dict[str, int] = {}
        self._latents: Tensor | None = None  # standardised training latents [N, d_z]
        self.bins: Bins | None = None  # k-means bins of the training latents (``encode_training_set``)
        self._track_n = 0
        self.n_batches = 0  # training batches seen (the critic steps; the generator steps every n_critic)

    def default_callbacks(self) -> list[Any]:
        """Latent-bin tracking during training and ``gan_diagnostics.json`` at its end."""
        return [LatentBinTracking()]

    @property
    def d_z(self) -> int:
        return int(self.z_mean.shape[0])

    @property
    def max_len(self) -> int:
        return self.autoencoder.max_len

    def train(self, mode: bool = True) -> LatentGAN:
        """Train / eval mode for the GAN; the nested VAE stays frozen in eval mode."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    # --- data: canonical SMILES -> standardised latent means ------------------------------------
    def featurize(self, canonical_smiles: str) -> tuple[str, Any]:
        """(canonical SMILES, the VAE's input for it); raises the VAE's OOVError / TooLongError /
        TokenizeError for a molecule it cannot encode (the DataModule counts those per status)."""
        return canonical_smiles, self.autoencoder.featurize(canonical_smiles)

    def item_length(self, item: Any) -> int:
        return 1  # latents have one size: no length bucketing

    def collate(self, items: Sequence[tuple[str, Any]]) -> dict[str, Tensor]:
        """``{"z": standardised latent means [B, d_z], "lengths": ones [B]}`` (rows the encoder returns as NaN
        are left out; they are counted in ``latent_info`` when the training set is encoded)."""
        if self._latents is not None and all(s in self._table for s, _ in items):
            z = self._latents[[self._table[s] for s, _ in items]]
        else:
            z = self.standardise(self._encode_items([x for _, x in items]))
        z = z[torch.isfinite(z).all(1)]
        return {"z": z, "lengths": torch.ones(z.shape[0], dtype=torch.long)}

    def standardise(self, mu: Tensor) -> Tensor:
        return (mu.to(self.z_mean) - self.z_mean) / self.z_std

    def unstandardise(self, u: Tensor) -> Tensor:
        return u * self.z_std + self.z_mean

    @torch.no_grad()
    def _encode_items(self, items: Sequence[Any], batch_size: int = 512) -> Tensor:
        """Posterior means [N, d_z] of already featurized VAE inputs (what ``vae.encode`` computes after
        standardising and featurizing, without doing those again)."""
        vae = self.autoencoder
        out = []
        for i in range(0, len(items), batch_size):
            batch = vae.collate(items[i:i + batch_size])
            batch = {k: v.to(vae.device) for k, v in batch.items()}  # tensors, or a PyG graph batch
            out.append(vae.encoder(batch)[0].float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.d_z)

    def encode_training_items(self, items: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        """Encode featurized training items (``featurize`` output) once; see :meth:`encode_training_set`."""
        return self._set_latents([s for s, _ in items], self._encode_items([x for _, x in items]))

    @torch.no_grad()
    def encode_training_set(self, smiles: Sequence[str]) -> dict[str, Any]:
        """Encode the training molecules once (``vae.encode``: posterior means, NaN rows for molecules the VAE
        cannot featurize), set the standardisation buffers from them and fit the latent bins; returns (and
        keeps) the counts, NaN rows included."""
        smiles = list(smiles)
        return self._set_latents(smiles, self.autoencoder.encode(smiles).float())

    @torch.no_grad()
    def _set_latents(self, smiles: list[str], mu: Tensor) -> dict[str, Any]:
        ok = torch.isfinite(mu).all(1)
        n_nan = int((~ok).sum())
        self.latent_info = {"n": len(smiles), "n_encoded": int(ok.sum()), "n_nan": n_nan,
                            "nan_examples": [s for s, good in zip(smiles, ok.tolist()) if not good][:5]}
        if n_nan:
            log.warning("GAN: the VAE could not encode %d of %d training molecules (NaN rows, left out), e.g. %s",
                        n_nan, len(smiles), self.latent_info["nan_examples"])
        if int(ok.sum()) < 2:
            raise ValueError(f"the VAE encoded {int(ok.sum())} of {len(smiles)} training molecules; the GAN needs "
                             "at least 2")
        good = mu[ok]
        self.z_mean.copy_(good.mean(0).to(self.z_mean))
        self.z_std.copy_(good.std(0).clamp_min(1e-6).to(self.z_std))
        self._latents = self.standardise(mu).cpu()
        self._table = {s: i for i, s in enumerate(smiles)}
        self._fit_bins(self._latents[ok.cpu()])
        return self.latent_info

    def _fit_bins(self, u: Tensor) -> None:
        """k-means bins over (up to 20,000) standardised training latents (``occupancy_bins``, capped at a
        tenth of the points; seed ``seed``)."""
        c = self.config
        x = u.numpy().astype(np.float64)
        if len(x) > 20_000:
            x = x[np.sort(np.random.default_rng(c.seed).choice(len(x), 20_000, replace=False))]
        self.bins = Bins(x, min(c.occupancy_bins, max(2, len(x) // 10)), seed=c.seed)
        self._track_n = min(c.occupancy_n, len(u))

    @torch.no_grad()
    def latent_bin_stats(self, n: int | None = None, seed: int = 0) -> dict[str, float]:
        """Latent-bin occupancy / TV / JS of ``n`` generated latents against the training latents' bins,
        with the real-vs-real values at the same n (``*_real``). Needs the training set encoded."""
        if self.bins is None:
            raise ValueError("no latent bins: encode the training set first (encode_training_set)")
        n = n or self._track_n
        return self.latent_bin_stats_of(self.sample_latents(n, seed=seed))

    @torch.no_grad()
    def latent_bin_stats_of(self, z: Tensor) -> dict[str, float]:
        """Latent-bin statistics of any latent points z [n, d_z] on the VAE scale (e.g. the VAE's own prior
        samples, for comparison), with the real-vs-real values at the same n (training latents)."""
        if self.bins is None or self._latents is None:
            raise ValueError("no latent bins: encode the training set first (encode_training_set)")
        u = self.standardise(torch.as_tensor(z, dtype=torch.float32)).cpu().numpy()
        pool = self._latents[torch.isfinite(self._latents).all(1)].numpy()
        gen, real = bin_stats_at_equal_n(self.bins, u, pool, seed=self.config.seed)
        return {**gen, "n": len(u), "n_bins": self.bins.k, **{f"{k}_real": real[k] for k in ("occupied", "tv", "js")}}

    # --- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_latents(self, n: int, *, seed: int | None = None, rng: RowRandom | None = None,
                       standardised: bool = False) -> Tensor:
        """``n`` generated latent points [n, d_z] (VAE scale, or standardised): row i from G(eps_i), eps_i
        the normals of stream 0 of row i of ``rng`` (default: rows 0..n-1 of ``seed``, as ``sample``)."""
        was = self.training
        self.eval()
        try:
            if rng is None:
                rng = RowRandom(int(seed or 0), range(n), self.device)
            elif len(rng) != n:
                raise ValueError(f"{len(rng)} random streams for {n} latent points")
            eps = rng.normal(0, self.config.noise_dim).to(self.device)
            u = self.generator(eps)
        finally:
            self.train(was)
        return u if standardised else self.unstandardise(u)

    def _sample(self, n: int, *, temperature: float, rng: RowRandom, condition=None, guidance=None,
                constrain=None) -> tuple[list[str], None]:
        """z = G(eps) (VAE scale), x ~ p(x|z) sampled from the VAE decoder (argmax if ``decode="argmax"``).
        Streams of a row: 0 the generator's noise, then the VAE decoder's token t from stream
        ``DECODER_STREAM + t`` (2 + t; stream 1, the VAE prior's noise, unused)."""
        self._refuse_constrain(constrain)
        z = self.sample_latents(n, rng=rng)
        greedy = self.config.decode == "argmax"
        return self.autoencoder.sample_decoder(z, None if greedy else rng, temperature=temperature, greedy=greedy,
                                               first_stream=DECODER_STREAM), None

    @torch.no_grad()
    @strict
    def sample(self, n: int, *, temperature: float = 1.0, seed: int | None = None, batch_size: int | None = None,
               condition: dict[str, float] | None = None, guidance: float | None = None,
               progress: bool = False, start: int = 0, scaffold: str | None = None, linker: str | None = None,
               extend: str | None = None, extrapolate: bool = False) -> SampleResult:
        """Draw ``n`` molecules: z from the generator, x ~ p(x|z) from the VAE decoder (the seed is
        recorded; molecule i from its own streams, as every family). With ``decode="argmax"`` the
        sampler is labelled ``latent+argmax-decoder``."""
        res = super().sample(n, temperature=temperature, seed=seed, batch_size=batch_size, condition=condition,
                             guidance=guidance, progress=progress, start=start, scaffold=scaffold, linker=linker,
                             extend=extend, extrapolate=extrapolate)
        if self.config.decode == "argmax":
            res.sampler = "latent+argmax-decoder"
        res.info["decoder"] = "argmax" if self.config.decode == "argmax" else "sampled"
        return res

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        c = self.config
        betas = (float(c.adam_betas[0]), float(c.adam_betas[1]))
        opt_c = torch.optim.Adam(self.critic.parameters(), lr=c.adam_lr, betas=betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=c.adam_lr, betas=betas)
        return [opt_c, opt_g]

    def on_fit_start(self) -> None:
        """Encode the training molecules once (the DataModule's featurized items: SMILES + VAE inputs)."""
        dm = getattr(self.trainer, "datamodule", None)
        items = getattr(dm, "train_items", None)
        if items is None:
            raise ValueError("the GAN trains through molgen.train (a MoleculeDataModule with train_items)")
        info = self.encode_training_items(items)
        log.info("GAN: %d training molecules encoded once (%d NaN rows left out)", info["n_encoded"], info["n_nan"])

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_c, opt_g = self.optimizers()
        real = batch["z"]
        b = real.shape[0]
        if b < 2:
            return None
        c = self.config
        eps = torch.randn(b, c.noise_dim, device=real.device)
        with torch.no_grad():
            fake = self.generator(eps)
        d_real, d_fake = self.critic(real).mean(), self.critic(fake).mean()
        gp = gradient_penalty(self.critic, real, fake).mean()
        loss_c = d_fake - d_real + c.gp_weight * gp
        opt_c.zero_grad(set_to_none=True)
        self.manual_backward(loss_c)
        opt_c.step()
        self.n_batches += 1
        logging_now = log_due(self)
        if self.n_batches % c.n_critic == 0:
            self.critic.requires_grad_(False)
            loss_g = -self.critic(self.generator(torch.randn(b, c.noise_dim, device=real.device))).mean()
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()
            self.critic.requires_grad_(True)
            if logging_now:
                self.log("train/loss_g", loss_g.detach(), batch_size=b)
        if logging_now:
            self.log("train/wasserstein", (d_real - d_fake).detach(), prog_bar=True, batch_size=b)
            self.log("train/gp", gp.detach(), batch_size=b)
            self.log("train/loss_critic", loss_c.detach(), batch_size=b)
        return None
