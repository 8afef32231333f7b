"""Latent-usage diagnostics for the VAE, computed on a fixed subset of molecules.

* Active units (Burda et al. 2016): A_u = Cov_x(E_q[z_u]) > 0.01.
* Mutual information I_q(x; z) (as He et al. 2019, one z_i ~ q(z|x_i) per x):
  I = 1/N sum_i [log q(z_i|x_i) - log q_hat(z_i)],  q_hat(z) = 1/N sum_j q(z|x_j).
  He et al. use the analytic -H[q] for the first term; using the same sample for both terms makes the
  noise cancel (x-independent posteriors give exactly 0) and bounds the estimate by log N exactly
  (q_hat(z_i) >= q(z_i|x_i)/N). An estimate near log N means "at least that", and is flagged.
* Marginal KL ("ELBO surgery", Hoffman & Johnson 2016): KL(q(z) || p(z)) = E_x KL(q(z|x)||p(z)) - I.
  Large values mean prior holes (prior samples land where no molecule's posterior is).
* Reconstruction accuracy: the share of molecules whose greedy decode of the posterior mean, argmax_x
  p(x | z = mu(x)), is the molecule itself (exact canonical match). It says whether z carries the
  molecule; I(x; z) alone cannot (it is capped at log N).
* Mixture usage: responsibilities r_k(x) = E_{q(z|x)}[pi_k p_k(z) / p(z)] (MC), aggregate usage
  u_k = E_x r_k(x), usage perplexity exp(H(u)) (K when all components are used equally) and mean
  per-molecule responsibility entropy E_x H(r(x)) (log K when components are indistinguishable).

Alarms: *posterior collapse* when I < ``mi_threshold`` nats (default 1) or fewer than ``d_z/10`` active
units; *mixture collapse* when the usage perplexity < K/2, or one component holds > 50 % of the mass, or
the components are indistinguishable (mean responsibility entropy > 0.9 log K: every posterior spreads
over all components, as when q(z|x) collapses onto the whole prior); :func:`warn_on_collapse` turns them
into :class:`~molgen.errors.CollapseWarning`. The training-time use (every validation, history, plot) is
:class:`molgen.training.callbacks.VAEDiagnostics`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from molgen.chem import standardize
from molgen.errors import CollapseWarning
from molgen.models.priors import Prior, diag_normal_log_prob, reparameterize


def active_units(mu: Tensor, threshold: float = 0.01) -> tuple[int, Tensor]:
    """(number of dimensions whose posterior mean varies across x by more than ``threshold``, variances)."""
    var = mu.double().var(dim=0, unbiased=True) if mu.shape[0] > 1 else torch.zeros(mu.shape[1])
    return int((var > threshold).sum()), var.float()


@torch.no_grad()
def mutual_information(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None,
                       chunk: int = 256) -> float:
    """Estimate of I_q(x; z) in nats over the N given posteriors (at most log N; module docstring)."""
    mu, logvar = mu.double(), logvar.double()
    n = mu.shape[0]
    z = reparameterize(mu, logvar, generator=generator)  # one sample per x: [N, d]
    log_q_own = diag_normal_log_prob(z, mu, logvar)
    log_qz = []
    for s in range(0, n, chunk):
        lp = diag_normal_log_prob(z[s:s + chunk, None, :], mu[None], logvar[None])  # [c, N]
        log_qz.append(torch.logsumexp(lp, dim=1) - math.log(n))
    return float((log_q_own - torch.cat(log_qz)).mean())


@torch.no_grad()
def mixture_usage(prior: Prior, mu: Tensor, logvar: Tensor, n_samples: int = 16,
                  generator: torch.Generator | None = None) -> dict[str, Any]:
    """Aggregate component usage, its perplexity and the mean responsibility entropy."""
    z = reparameterize(mu, logvar, n_samples, generator)  # [S, N, d]
    r = torch.softmax(prior.component_log_probs(z).double(), dim=-1).mean(0)  # [N, K]
    usage = r.mean(0)
    h_usage = -(usage * usage.clamp_min(1e-30).log()).sum()
    h_resp = -(r * r.clamp_min(1e-30).log()).sum(-1).mean()
    return {"usage": usage.float(), "usage_perplexity": float(h_usage.exp()),
            "responsibility_entropy": float(h_resp), "top_component_share": float(usage.max())}


def detect_collapse(diag: dict[str, Any], d_z: int, n_components: int, mi_threshold: float = 1.0) -> dict[str, bool]:
    """Posterior / mixture collapse flags from a diagnostics dict (rules in the module docstring)."""
    post = diag["mi"] < mi_threshold or diag["active_units"] < max(1, d_z // 10)
    mix = False
    if n_components > 1:
        mix = (diag["usage_perplexity"] < n_components / 2 or diag["top_component_share"] > 0.5
               or diag.get("responsibility_entropy", 0.0) > 0.9 * math.log(n_components))
    return {"posterior_collapse": bool(post), "mixture_collapse": bool(mix)}


@torch.no_grad()
def latent_diagnostics(prior: Prior, mu: Tensor, logvar: Tensor, kl: Tensor, rec: Tensor | None = None,
                       seed: int = 0, mi_threshold: float = 1.0) -> dict[str, Any]:
    """All diagnostics for N posteriors (mu, logvar [N, d]) with their KL [N] (and rec [N]) in nats/molecule."""
    g = torch.Generator(device=mu.device).manual_seed(seed)
    n, d = mu.shape
    au, _ = active_units(mu)
    mi = mutual_information(mu, logvar, g)
    out: dict[str, Any] = {"n": n, "d_z": d, "kl": float(kl.mean()), "active_units": au, "mi": mi,
                           "mi_cap": math.log(n), "mi_at_cap": bool(mi >= math.log(n) - 0.5),
                           "marginal_kl": float(kl.mean()) - mi,
                           "mean_posterior_var": float(logvar.exp().mean())}
    if rec is not None:
        out["rec"] = float(rec.mean())
        out["elbo"] = float((rec - kl).mean())
    k = prior.n_components
    out["n_components"] = k
    if k > 1:
        u = mixture_usage(prior, mu, logvar, generator=g)
        out.update({key: v for key, v in u.items() if key != "usage"})
        out["usage"] = [round(float(x), 4) for x in u["usage"]]
    out.update(detect_collapse(out, d, k, mi_threshold))
    return out


def warn_on_collapse(diag: dict[str, Any]) -> None:
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


def reconstruction_matches(decoded: Sequence[str | None], targets: Sequence[str], policy: Any) -> list[bool]:
    """Per row: does the decoded string standardize to the same canonical molecule as the target?"""
    out = []
    for d, t in zip(decoded, targets, strict=True):
        can = standardize(d, policy)[0] if d else None
        out.append(can is not None and can == standardize(t, policy)[0])
    return out


@torch.no_grad()
def reconstruction_accuracy(model: Any, smiles: Sequence[str], *, batch_size: int = 256) -> dict[str, Any]:
    """Greedy reconstruction of ``smiles`` through a VAE's posterior means: ``accuracy`` over all rows (a
    molecule the model cannot encode counts as not reconstructed), ``n``, ``n_encoded``, and
    ``accuracy_encoded`` over the encodable rows only."""
    smiles = list(smiles)
    hits, n_enc = 0, 0
    for s in range(0, len(smiles), batch_size):
        chunk = smiles[s:s + batch_size]
        mu = model.encode(chunk)
        ok = ~torch.isnan(mu).any(-1)
        if not bool(ok.any()):
            continue
        dec = model.decode(mu[ok], greedy=True)
        targets = [c for c, k in zip(chunk, ok.tolist(), strict=True) if k]
        hits += sum(reconstruction_matches(dec.smiles, targets, model.policy))
        n_enc += int(ok.sum())
    n = len(smiles)
    return {"accuracy": hits / n if n else float("nan"), "n": n, "n_encoded": n_enc,
            "accuracy_encoded": hits / n_enc if n_enc else float("nan")}


def final_diagnostics(model: Any, smiles: Sequence[str]) -> dict[str, Any]:
    """What ``metadata.json["final"]`` and ``molgen info`` keep about a trained VAE's latent, on (at most
    ``diag_size``) validation molecules: active units, I(x; z) and greedy reconstruction accuracy."""
    smiles = list(smiles)[: model.config.diag_size]
    mu, lv = model.encode(smiles, return_logvar=True)
    ok = ~torch.isnan(mu).any(-1)
    if int(ok.sum()) < 2:
        return {}
    g = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {"active_units": active_units(mu[ok])[0], "d_z": model.d_z,
                           "mi_nats": round(mutual_information(mu[ok], lv[ok], g), 3)}
    if model.config.recon_size:
        rec = reconstruction_accuracy(model, smiles[: model.config.recon_size])
        out.update(recon_accuracy=round(rec["accuracy"], 4), recon_n=rec["n"])
    return out


def plot_history(history: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """PNG of the diagnostics over training (matplotlib Agg); None when there is nothing to plot."""
    if not history:
        return None
    import matplotlib  # lazy: heavy optional plotting, only when a history is plotted

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as above

    step = [h.get("step", i) for i, h in enumerate(history)]
    fig, ax = plt.subplots(2, 3, figsize=(13, 7))
    ax = ax.ravel()

    def line(a, key, label=None, **kw):
        ys = [h.get(key, float("nan")) for h in history]
        a.plot(step, ys, marker="o", ms=3, label=label or key, **kw)

    line(ax[0], "rec", "E log p(x|z)")
    line(ax[0], "elbo", "ELBO (beta=1)")
    ax[0].set_title("rate/distortion (nats/molecule)")
    line(ax[1], "kl", "KL")
    line(ax[1], "marginal_kl", "marginal KL")
    ax[1].set_title("KL terms (nats/molecule)")
    line(ax[2], "mi", "I(x;z)")
    ax[2].plot(step, [h.get("mi_cap", float("nan")) for h in history], "k--", label="log N cap")
    ax[2].set_title("mutual information (nats)")
    line(ax[3], "active_units", "active units")
    ax[3].axhline(history[-1].get("d_z", 0), color="k", ls="--", label="d_z")
    ax[3].set_title("active units")
    if any("recon_accuracy" in h for h in history):
        r = ax[3].twinx()
        r.plot(step, [h.get("recon_accuracy", float("nan")) for h in history], "g-", marker="s", ms=3,
               label="reconstruction accuracy")
        r.set_ylim(0, 1)
        r.legend(fontsize=7, loc="lower right")
    if history[-1].get("n_components", 1) > 1:
        line(ax[4], "usage_perplexity", "usage perplexity")
        ax[4].axhline(history[-1]["n_components"], color="k", ls="--", label="K")
        line(ax[4], "responsibility_entropy", "mean resp. entropy (nats)")
    ax[4].set_title("mixture usage")
    line(ax[5], "beta", "beta")
    ax[5].set_title("KL weight")
    for a in ax:
        a.set_xlabel("step")
        a.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
