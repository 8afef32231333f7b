"""Priors and KL estimators: MC KL with closed-form entropy vs closed forms."""

import math

import torch

from molgen.models.priors import (
    MixturePrior,
    StandardNormalPrior,
    VampPrior,
    build_prior,
    diag_normal_log_prob,
    kl_standard_normal,
    mc_kl,
)
from molgen.rowrandom import RowRandom


def _q(b=16, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), 0.5 * torch.randn(b, d, generator=g) - 0.5


def _kl_gauss(mu, lv, m, log_s):
    """Closed-form KL(N(mu, e^lv) || N(m, e^{2 log_s}))."""
    return 0.5 * ((lv.exp() + (mu - m) ** 2) / (2 * log_s).exp() - 1 - lv + 2 * log_s).sum(-1)


def test_mc_kl_matches_closed_form_for_a_one_component_mixture():
    mu, lv = _q()
    p = MixturePrior(6, n_components=1)
    with torch.no_grad():
        p.means.normal_()
        p.log_scales.uniform_(-0.5, 0.5)
    exact = _kl_gauss(mu, lv, p.means[0], p.log_scales[0])
    est = mc_kl(p, mu, lv, n_samples=4000, generator=torch.Generator().manual_seed(1))
    # MC error of the cross-entropy term only: a few % of the KL at S = 4000
    assert torch.allclose(est, exact, rtol=0.03, atol=0.05), (est - exact).abs().max()
    # and a standard-normal one-component mixture reproduces the N(0, I) closed form
    p0 = MixturePrior(6, n_components=1)
    with torch.no_grad():
        p0.means.zero_()
    est0 = mc_kl(p0, mu, lv, 4000, torch.Generator().manual_seed(2))
    assert torch.allclose(est0, kl_standard_normal(mu, lv), rtol=0.03, atol=0.05)


def test_mc_kl_is_unbiased_and_its_variance_falls_with_samples():
    mu, lv = _q(b=1)
    p = MixturePrior(6, n_components=1).requires_grad_(False)
    exact = _kl_gauss(mu, lv, p.means[0], p.log_scales[0])
    g = torch.Generator().manual_seed(3)
    s1 = torch.stack([mc_kl(p, mu, lv, 1, g) for _ in range(2000)])
    s16 = torch.stack([mc_kl(p, mu, lv, 16, g) for _ in range(500)])
    assert abs(float(s1.mean() - exact)) < 4 * float(s1.std()) / math.sqrt(2000)
    assert float(s16.var()) < float(s1.var()) / 8


def test_standard_normal_prior_uses_the_closed_form():
    mu, lv = _q()
    p = StandardNormalPrior(6)
    assert torch.equal(p.kl(mu, lv), kl_standard_normal(mu, lv))
    z = torch.randn(5, 6)
    assert torch.allclose(p.log_prob(z), diag_normal_log_prob(z, torch.zeros(6), torch.zeros(6)))


def test_mixture_log_prob_normalizes_and_samples_follow_the_weights():
    p = MixturePrior(1, n_components=3, learn_weights=True)
    with torch.no_grad():
        p.means.copy_(torch.tensor([[-6.0], [0.0], [6.0]]))
        p.logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    grid = torch.linspace(-20, 20, 20001)[:, None]
    mass = torch.trapezoid(p.log_prob(grid).exp(), grid[:, 0])
    assert abs(float(mass) - 1) < 1e-4
    s = p.sample(20000, RowRandom(0, range(20000)))
    frac_right = float((s > 3).float().mean())
    assert abs(frac_right - float(torch.softmax(p.logits, 0)[2])) < 0.02


def test_uniform_weights_are_fixed_by_default():
    p = build_prior({"name": "mog", "args": {"n_components": 5}}, 4)
    assert "logits" not in dict(p.named_parameters())
    assert torch.allclose(p.log_weights().exp(), torch.full((5,), 0.2))


def test_vamp_prior_is_a_mixture_of_the_encoder_head():
    from molgen.encoders.base import GaussianHead

    head = GaussianHead(10, 4)
    p = VampPrior(4, n_components=3, feature_dim=10).bind(head)
    assert not any(n.startswith("_head") for n, _ in p.named_parameters())
    z = torch.randn(7, 4)
    m, lv = head(p.pseudo_inputs)
    expect = torch.logsumexp(diag_normal_log_prob(z[:, None], m, lv), -1) - math.log(3)
    assert torch.allclose(p.log_prob(z), expect)
    assert p.sample(5, RowRandom(0, range(5))).shape == (5, 4)


def test_component_specs_are_checked_against_the_component():
    import pytest

    from molgen.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown argument.*n_component; accepted: learn_weights, n_components"):
        build_prior({"name": "mog", "args": {"n_component": 5}}, 4)
    with pytest.raises(ConfigError, match="unknown prior 'moq'; choose one of: flow, gaussian, mog, vamp"):
        build_prior("moq", 4)
