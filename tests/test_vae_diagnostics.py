"""Latent diagnostics on synthetic encoders whose answers are known."""

import math

import pytest
import torch

from molgen.models.priors import MixturePrior, StandardNormalPrior
from molgen.models.vae_diagnostics import (
    active_units,
    detect_collapse,
    latent_diagnostics,
    mutual_information,
    plot_history,
)


def test_active_units_counts_dimensions_whose_mean_varies_across_x():
    g = torch.Generator().manual_seed(0)
    mu = torch.zeros(500, 6)
    mu[:, :2] = torch.randn(500, 2, generator=g)          # var 1: active
    mu[:, 2] = 0.05 * torch.randn(500, generator=g)       # var 0.0025: inactive
    mu[:, 3] = 0.3                                          # constant: inactive
    au, var = active_units(mu)
    assert au == 2
    assert torch.allclose(var, mu.double().var(dim=0).float()) and var[3] == 0  # unbiased, per dimension
    assert var[2] == pytest.approx(0.0025, rel=0.2)


def test_mi_is_zero_when_the_posterior_ignores_x():
    n = 400
    mu, lv = torch.zeros(n, 4), torch.zeros(n, 4)
    mi = mutual_information(mu, lv, torch.Generator().manual_seed(0))
    assert abs(mi) < 1e-9  # identical posteriors: q_hat(z) = q(z|x) exactly


def test_mi_reaches_log_n_for_distinct_sharp_posteriors():
    n = 300
    mu = torch.randn(n, 8, generator=torch.Generator().manual_seed(1)) * 10
    lv = torch.full((n, 8), math.log(1e-4))
    mi = mutual_information(mu, lv, torch.Generator().manual_seed(0))
    assert mi == pytest.approx(math.log(n), abs=1e-3)


def test_mi_equals_log_two_for_two_separated_clusters():
    n = 400
    mu = torch.zeros(n, 2)
    mu[n // 2:, 0] = 50.0  # x determines one of two clusters; within a cluster z carries nothing about x
    mi = mutual_information(mu, torch.zeros(n, 2), torch.Generator().manual_seed(0))
    assert mi == pytest.approx(math.log(2), abs=0.01)


def test_collapse_flags_and_mixture_usage():
    n, d = 400, 4
    prior = MixturePrior(d, n_components=4)
    with torch.no_grad():
        prior.means.copy_(torch.eye(4) * 20)
        prior.log_scales.zero_()
    # all posteriors sit on component 0 -> mixture collapse; x-independent -> posterior collapse
    mu = prior.means[0].expand(n, d).clone()
    lv = torch.full((n, d), -4.0)
    diag = latent_diagnostics(prior, mu, lv, kl=torch.ones(n))
    assert diag["usage_perplexity"] == pytest.approx(1.0, abs=1e-3)
    assert diag["posterior_collapse"] and diag["mixture_collapse"]
    # posteriors spread evenly over the 4 components -> perplexity 4, low responsibility entropy, healthy
    mu = prior.means[torch.arange(n) % 4].clone()
    diag = latent_diagnostics(prior, mu, lv, kl=torch.full((n,), 5.0))
    assert diag["usage_perplexity"] == pytest.approx(4.0, abs=0.05)
    assert diag["responsibility_entropy"] < 0.05
    assert not diag["posterior_collapse"] and not diag["mixture_collapse"]
    assert diag["marginal_kl"] == pytest.approx(5.0 - diag["mi"])
    assert diag["mi"] == pytest.approx(math.log(4), abs=0.05)


def test_merged_components_count_as_mixture_collapse():
    # every posterior covers all components equally: usage looks perfect (perplexity K) but the
    # mixture carries no information (responsibility entropy log K)
    flags = detect_collapse({"mi": 3.0, "active_units": 8, "usage_perplexity": 8.0, "top_component_share": 0.125,
                             "responsibility_entropy": math.log(8) - 0.01}, d_z=8, n_components=8)
    assert flags["mixture_collapse"] and not flags["posterior_collapse"]


def test_gaussian_prior_has_no_mixture_alarm():
    flags = detect_collapse({"mi": 3.0, "active_units": 8}, d_z=8, n_components=1)
    assert flags == {"posterior_collapse": False, "mixture_collapse": False}
    d = latent_diagnostics(StandardNormalPrior(3), torch.randn(50, 3), torch.zeros(50, 3), torch.ones(50))
    assert "usage_perplexity" not in d


def test_plot_history_writes_a_png(tmp_path):
    hist = [{"step": s, "rec": -40.0 + s, "elbo": -45.0 + s, "kl": 5.0, "marginal_kl": 1.0, "mi": 2.0,
             "mi_cap": 6.0, "active_units": 10, "d_z": 32, "usage_perplexity": 6.0, "n_components": 8,
             "responsibility_entropy": 0.3, "beta": 0.5} for s in range(3)]
    p = plot_history(hist, tmp_path / "d.png")
    assert p.exists() and p.read_bytes()[:4] == b"\x89PNG"
    assert plot_history([], tmp_path / "e.png") is None
