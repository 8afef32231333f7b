"""The latent-flow prior (``prior: flow``): exact density, invertibility, per-row sampling, fitting, KL."""

import math

import pytest
import torch

from molgen.errors import ConfigError
from molgen.models.priors import FlowPrior, StandardNormalPrior, build_prior, mc_kl
from molgen.rowrandom import RowRandom


def _randomized(p: FlowPrior, scale: float = 0.5, seed: int = 0) -> FlowPrior:
    """Give the zero-initialised last layers random weights, so the flow is far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for c in p.couplings:
            last = c.net[-1]
            last.weight.copy_(scale * torch.randn(last.weight.shape, generator=g))
            last.bias.copy_(scale * torch.randn(last.bias.shape, generator=g))
    return p


def _two_moons(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(a), 1 - torch.cos(a))
    y = torch.where(upper, torch.sin(a), 0.5 - torch.sin(a))
    z = torch.stack([x - 0.5, y - 0.25], -1) * 2.0
    return z + 0.1 * torch.randn(n, 2, generator=g)


def test_flow_prior_starts_as_the_standard_normal():
    p = FlowPrior(5)
    z = torch.randn(3, 7, 5)
    assert torch.allclose(p.log_prob(z), StandardNormalPrior(5).log_prob(z), atol=1e-6)
    assert p.n_components == 1 and p.component_log_probs(z).shape == (3, 7, 1)


@pytest.mark.parametrize("d_z", [1, 2])
def test_flow_log_prob_integrates_to_one(d_z):
    torch.manual_seed(0)
    p = _randomized(FlowPrior(d_z, n_layers=4, hidden=16), scale=0.4)
    with torch.no_grad():
        if d_z == 1:
            grid = torch.linspace(-30, 30, 60001)
            mass = torch.trapezoid(p.log_prob(grid[:, None]).exp(), grid)
        else:
            ax = torch.linspace(-15, 15, 1201)
            zz = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1)
            dens = p.log_prob(zz).exp()  # [1201, 1201]
            mass = torch.trapezoid(torch.trapezoid(dens, ax, dim=1), ax)
    assert abs(float(mass) - 1.0) < 1e-2, float(mass)


def test_flow_log_det_matches_the_autograd_jacobian():
    torch.manual_seed(1)
    p = _randomized(FlowPrior(4, n_layers=5, hidden=16, permutation="random"), scale=0.5).double()
    for z in torch.randn(3, 4, dtype=torch.float64):
        jac = torch.autograd.functional.jacobian(lambda v: p.forward_flow(v[None])[0][0], z)
        _, logdet = p.forward_flow(z[None])
        assert torch.allclose(logdet[0], torch.linalg.slogdet(jac)[1], atol=1e-8)
        u = p.forward_flow(z[None])[0][0]
        expect = -0.5 * (math.log(2 * math.pi) * 4 + (u * u).sum()) + torch.linalg.slogdet(jac)[1]
        assert torch.allclose(p.log_prob(z), expect, atol=1e-8)


@pytest.mark.parametrize("permutation", ["random", "reverse", "none"])
def test_flow_inverse_undoes_forward(permutation):
    torch.manual_seed(2)
    p = _randomized(FlowPrior(6, n_layers=4, hidden=32, permutation=permutation), scale=0.5)
    z = torch.randn(2, 50, 6)
    u, _ = p.forward_flow(z)
    assert not torch.allclose(u, z, atol=1e-2)  # not the identity
    assert torch.allclose(p.inverse_flow(u), z, atol=1e-5)
    assert torch.allclose(p.forward_flow(p.inverse_flow(z))[0], z, atol=1e-5)


def test_flow_samples_are_per_row_and_a_prefix_across_batch_sizes():
    torch.manual_seed(3)
    p = _randomized(FlowPrior(8, hidden=32), scale=0.3)
    with torch.no_grad():
        a = p.sample(20, RowRandom(7, range(20)))
        b = p.sample(50, RowRandom(7, range(50)))
        c = p.sample(30, RowRandom(7, range(20, 50)))  # rows 20..49 drawn in another batch
        d = p.sample(20, RowRandom(8, range(20)))
    assert a.shape == (20, 8) and a.dtype == torch.float32
    assert torch.allclose(a, b[:20], atol=1e-6) and torch.allclose(c, b[20:], atol=1e-6)
    assert not torch.allclose(a, d)
    # the samples are f^{-1} of the row streams' Gaussian noise (stream + 1, as the other priors)
    u = RowRandom(7, range(20)).normal(1, 8)
    assert torch.allclose(p.forward_flow(a)[0], u, atol=1e-4)
    with pytest.raises(ValueError, match="random streams"):
        p.sample(5, RowRandom(0, range(4)))


def test_flow_prior_fitted_by_maximum_likelihood_beats_a_fitted_gaussian():
    torch.manual_seed(4)
    train, test = _two_moons(2000, seed=0), _two_moons(2000, seed=1)
    p = FlowPrior(2, n_layers=6, hidden=64)
    opt = torch.optim.Adam(p.parameters(), lr=3e-3)
    for _ in range(600):
        idx = torch.randint(0, train.shape[0], (256,))
        loss = -p.log_prob(train[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the best Gaussian (ML fit, full covariance) as the baseline
    mean, cov = train.mean(0), torch.cov(train.T)
    gauss = torch.distributions.MultivariateNormal(mean, cov)
    with torch.no_grad():
        flow_ll, gauss_ll = float(p.log_prob(test).mean()), float(gauss.log_prob(test).mean())
        flow_start = float(FlowPrior(2).log_prob(test).mean())
    assert flow_ll > gauss_ll + 0.4, (flow_ll, gauss_ll)
    assert flow_ll > flow_start + 0.5
    # samples follow the fitted density: far more land on the moons than the Gaussian's (~60 %)
    with torch.no_grad():
        near = lambda x: float((torch.cdist(x, train).min(1).values < 0.3).float().mean())  # noqa: E731
        flow_near = near(p.sample(2000, RowRandom(0, range(2000))))
        gauss_near = near(gauss.sample((2000,)))
    assert flow_near > gauss_near + 0.15, (flow_near, gauss_near)


def test_flow_kl_is_finite_with_gradients_to_the_posterior_and_the_flow():
    torch.manual_seed(5)
    p = _randomized(FlowPrior(6, hidden=16), scale=0.3)
    mu = torch.randn(10, 6, requires_grad=True)
    logvar = (0.3 * torch.randn(10, 6) - 1.0).requires_grad_(True)
    kl = p.kl(mu, logvar, n_samples=8, generator=torch.Generator().manual_seed(0))
    assert kl.shape == (10,) and torch.isfinite(kl).all()
    kl.sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0
    grads = [q.grad for q in p.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0
    # given eps: the same estimate as mc_kl, deterministically
    eps = torch.randn(4, 10, 6)
    assert torch.equal(p.kl(mu, logvar, 4, eps=eps), mc_kl(p, mu, logvar, 4, eps=eps))
    # an untouched flow is N(0, I): MC KL ~ the closed form
    p0 = FlowPrior(6)
    with torch.no_grad():
        est = p0.kl(mu, logvar, 4000, torch.Generator().manual_seed(1))
        exact = StandardNormalPrior(6).kl(mu, logvar)
    assert torch.allclose(est, exact, rtol=0.05, atol=0.1)


def test_flow_log_prob_stays_float32_under_autocast():
    p = _randomized(FlowPrior(4, hidden=16), scale=0.3)
    z = torch.randn(5, 4)
    ref = p.log_prob(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp = p.log_prob(z)
    assert lp.dtype == torch.float32 and torch.equal(lp, ref)


def test_build_flow_prior_and_its_argument_checks():
    p = build_prior({"name": "flow", "args": {"n_layers": 2, "hidden": 8, "activation": "gelu",
                                              "permutation": "reverse"}}, 3, feature_dim=10)
    assert isinstance(p, FlowPrior) and len(p.couplings) == 2 and p.d_z == 3
    assert torch.equal(p.perms[0], torch.tensor([2, 1, 0]))
    d = build_prior("flow", 5)
    assert len(d.couplings) == 4 and d.couplings[0].net[0].out_features == 128
    assert isinstance(d.couplings[0].net[1], torch.nn.SiLU)
    # fixed seeded permutations, saved with the weights
    assert torch.equal(FlowPrior(9, seed=3).perms, FlowPrior(9, seed=3).perms)
    assert not torch.equal(FlowPrior(9, seed=3).perms, FlowPrior(9, seed=4).perms)
    src, q = _randomized(FlowPrior(9, seed=3)), FlowPrior(9, seed=4)
    q.load_state_dict(src.state_dict())
    assert torch.equal(q.perms, src.perms)
    z = torch.randn(4, 9)
    assert torch.equal(q.log_prob(z), src.log_prob(z))
    assert torch.equal(q.sample(4, RowRandom(0, range(4))), src.sample(4, RowRandom(0, range(4))))
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) layers; accepted: activation, clamp, hidden, "
                                          r"n_layers, permutation, seed"):
        build_prior({"name": "flow", "args": {"layers": 3}}, 4)
    with pytest.raises(ConfigError, match="unknown activation 'relu'; accepted: silu, gelu"):
        build_prior({"name": "flow", "args": {"activation": "relu"}}, 4)
    with pytest.raises(ConfigError, match="unknown permutation 'shuffle'; accepted: random, reverse, none"):
        build_prior({"name": "flow", "args": {"permutation": "shuffle"}}, 4)
    with pytest.raises(ConfigError, match="n_layers must be an integer >= 1"):
        build_prior({"name": "flow", "args": {"n_layers": 0}}, 4)
    with pytest.raises(ConfigError, match="clamp must be a finite number > 0"):
        build_prior({"name": "flow", "args": {"clamp": -1.0}}, 4)
