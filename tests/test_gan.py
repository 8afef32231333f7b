"""LatentGAN: per-sample gradient penalty, batch-independent critic, training through molgen train with a
nested frozen VAE, latent-bin tracking, save / load, and the refusal of a likelihood."""

from __future__ import annotations

import json

import pytest
import torch

from molgen.errors import CapabilityError, ConfigError
from molgen.models.gan import GANConfig, LatentGAN, gradient_penalty, mlp_critic, mlp_generator
from molgen.registry import MODELS

from .conftest import TINY_MODEL_ARGS

GAN_ARGS = {**TINY_MODEL_ARGS["gan"], "occupancy_every": 10}


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic_and_per_sample():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1, 6))
        lin.weight /= lin.weight.norm()
    real, fake = torch.randn(16, 6), torch.randn(16, 6)
    gp = gradient_penalty(lin, real, fake)
    assert gp.shape == (16,) and torch.allclose(gp, torch.zeros(16), atol=1e-10)
    with torch.no_grad():
        lin.weight *= 3.0  # |grad| = 3 everywhere: (3 - 1)^2 per sample
    assert torch.allclose(gradient_penalty(lin, real, fake), torch.full((16,), 4.0), atol=1e-5)

    class Quadratic(torch.nn.Module):  # D(u) = |u|^2 / 2: grad = u, a different norm per row
        def forward(self, u):
            return 0.5 * u.square().sum(1, keepdim=True)

    g = torch.Generator().manual_seed(1)
    gp = gradient_penalty(Quadratic(), real, fake, generator=g)
    alpha = torch.rand(16, 1, generator=torch.Generator().manual_seed(1))
    x = alpha * real + (1 - alpha) * fake
    assert torch.allclose(gp, (x.norm(dim=1) - 1).square(), atol=1e-5)  # per row, not a batch norm


@pytest.mark.parametrize("spectral", [False, True])
def test_critic_and_generator_rows_do_not_depend_on_other_rows(spectral):
    torch.manual_seed(0)
    critic = mlp_critic(8, [32, 16], 0.2, spectral).eval()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    gen = mlp_generator(4, [16, 16], 8, "layernorm", 0.2)
    for net, d in ((critic, 8), (gen, 4)):
        a = torch.randn(5, d)
        b = a.clone()
        b[1:] = torch.randn(4, d) * 10  # other rows change
        with torch.no_grad():
            assert torch.allclose(net(a)[0], net(b)[0], atol=1e-6)
            assert torch.allclose(net(a)[:1], net(a[:1]), atol=1e-6)
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in gen.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in list(gen.modules()) + list(critic.modules()))


def test_config_refuses_unsupported_values_listing_the_accepted():
    with pytest.raises(ConfigError, match="layernorm, batchnorm"):
        GANConfig.from_dict({"gen_norm": "groupnorm"})
    with pytest.raises(ConfigError, match="sample, argmax"):
        GANConfig.from_dict({"decode": "beam"})
    with pytest.raises(ConfigError, match="unknown option"):
        GANConfig.from_dict({"n_critics": 5})


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory, smiles_tokenizer):
    torch.manual_seed(0)
    vae = MODELS.get("vae").build({**TINY_MODEL_ARGS["vae"], "max_len": 60}, representation=smiles_tokenizer)
    path = tmp_path_factory.mktemp("gan-vae") / "vae"
    vae.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, vae_dir, tiny_train_smiles):
    """A tiny GAN trained for 60 batches through ``molgen train --model gan --autoencoder DIR``."""
    from molgen.cli.main import main

    tmp = tmp_path_factory.mktemp("gan")
    data = tmp / "train.smi"
    data.write_text("\n".join([*tiny_train_smiles[:400], "CC[Se]CC"]) + "\n")  # one molecule the VAE cannot encode
    out = tmp / "gan"
    sets = [x for k, v in GAN_ARGS.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    assert main(["train", "--model", "gan", "--autoencoder", str(vae_dir), "--data", str(data), "--out", str(out),
                 "--max-steps", "60", "--batch-size", "32", "--precision", "32-true", "-q",
                 *sets]) == 0
    return out


def test_training_encodes_once_tracks_latent_bins_and_keeps_the_vae_frozen(trained, vae_dir):
    gan = LatentGAN.from_pretrained(trained)
    vae = MODELS.get("vae").from_pretrained(vae_dir)
    for (k, a), (_, b) in zip(gan.autoencoder.state_dict().items(), vae.state_dict().items()):
        assert torch.equal(a, b), f"the nested VAE changed: {k}"  # reused, not retrained
    assert (trained / "nested" / "autoencoder" / "config.json").exists()
    assert json.loads((trained / "config.json").read_text())["likelihood"] is None
    assert gan.z_std.min() > 0 and not torch.allclose(gan.z_mean, torch.zeros_like(gan.z_mean))
    dropped = gan.metadata["dropped"]  # counted per split and status, never silently dropped
    assert sum(d.get("oov_token:[Se]", 0) for d in dropped.values()) == 1
    diag = json.loads((trained / "logs" / "gan_diagnostics.json").read_text())
    assert diag["latent_info"]["n_nan"] == 0 and diag["latent_info"]["n_encoded"] > 300
    hist = diag["latent_bins_history"]
    assert [h["batch"] for h in hist if not h.get("final")] == [10, 20, 30, 40, 50, 60]
    assert all(0 < h["occupied"] <= 1 and h["n_bins"] == 8 and 0 < h["occupied_real"] <= 1 for h in hist)
    import pandas as pd

    logged = pd.read_csv(trained / "logs" / "metrics.csv")
    assert logged["train/latent_bins_occupied"].notna().sum() == 6


def test_save_load_round_trip_with_the_nested_vae(trained, tmp_path):
    gan = LatentGAN.from_pretrained(trained)
    res = gan.sample(40, seed=3)
    assert res.sampler == "ancestral" and res.info["decoder"] == "sampled" and res.log_likelihood is None
    gan.save_pretrained(tmp_path / "again")
    back = LatentGAN.from_pretrained(tmp_path / "again")
    assert back.sample(40, seed=3).smiles == res.smiles
    torch.testing.assert_close(back.sample_latents(8, seed=1), gan.sample_latents(8, seed=1))
    # samples are x ~ p(x|z) through the VAE decoder: the same latents, other decoder draws
    z = gan.sample_latents(30, seed=0)
    assert gan.autoencoder.decode(z, seed=1).smiles != gan.autoencoder.decode(z, seed=2).smiles


def test_no_likelihood_a_clear_error_everywhere(trained, tmp_path, capsys):
    gan = LatentGAN.from_pretrained(trained)
    assert "log_likelihood" not in gan.capabilities and gan.likelihood_label() is None
    for call in (lambda: gan.score(["CCO"]), lambda: gan.log_likelihood({}), lambda: gan.likelihood_label("exact")):
        with pytest.raises(CapabilityError, match=r"implicit model .* has no density"):
            call()
    from molgen.cli.main import main

    (tmp_path / "lib.smi").write_text("CCO\n")
    assert main(["score", str(tmp_path / "lib.smi"), "--model", str(trained), "-o", str(tmp_path / "o.csv")]) == 2
    assert "no density" in capsys.readouterr().err


def test_a_collapsed_generator_is_flagged_by_latent_bins(trained, tiny_train_smiles):
    gan = LatentGAN.from_pretrained(trained)
    info = gan.encode_training_set([*tiny_train_smiles[:300], "not a smiles"])
    assert info["n_nan"] == 1 and info["nan_examples"] == ["not a smiles"]
    healthy = gan.latent_bin_stats(64, seed=0)
    with torch.no_grad():
        last = gan.generator[-1]
        last.weight.zero_()  # every noise vector -> one latent point
    collapsed = gan.latent_bin_stats(64, seed=0)
    assert collapsed["n_occupied"] == 1 and collapsed["occupied"] == pytest.approx(1 / collapsed["n_bins"])
    assert collapsed["occupied_real"] > 0.5 and collapsed["tv"] > healthy["tv"]


def test_argmax_decoding_only_on_request_and_labelled(trained):
    gan = LatentGAN.from_pretrained(trained)
    greedy = LatentGAN(GANConfig.from_dict({**GAN_ARGS, "decode": "argmax"}), autoencoder=gan.autoencoder)
    greedy.load_state_dict(gan.state_dict())
    res = greedy.eval().sample(10, seed=0)
    assert res.sampler == "latent+argmax-decoder" and res.info["decoder"] == "argmax"
    z = greedy.sample_latents(10, seed=0)  # the latents sample(10, seed=0) decodes
    assert res.smiles == gan.autoencoder.decode(z, greedy=True).smiles


def test_autoencoder_option_errors(vae_dir, tiny_train_smiles, tmp_path):
    import molgen

    with pytest.raises(ConfigError, match="--autoencoder DIR"):
        molgen.train("gan", data=tiny_train_smiles[:50], out=tmp_path / "a", max_steps=1, progress=False)
    with pytest.raises(ConfigError, match="holds no autoencoder"):
        molgen.train("transformer", data=tiny_train_smiles[:50], out=tmp_path / "b", max_steps=1,
                     autoencoder=str(vae_dir), progress=False)
    with pytest.raises(ConfigError, match="no representation of its own"):
        LatentGAN.build(GAN_ARGS, representation=object(), autoencoder=MODELS.get("vae").from_pretrained(vae_dir))


def test_training_optimiser_options_the_gan_does_not_read_are_an_error(vae_dir, tiny_train_smiles, tmp_path):
    import molgen

    for opt in ({"lr": 1e-3}, {"warmup_steps": 5}):
        with pytest.raises(ConfigError, match=r"sets its own optimiser \(model options: adam_lr, adam_betas\)"):
            molgen.train("gan", data=tiny_train_smiles[:50], out=tmp_path / "a", max_steps=1, progress=False,
                         autoencoder=str(vae_dir), **opt)
    with pytest.raises(ConfigError, match="lr would not be used"):  # from a YAML config as well
        molgen.train(data=tiny_train_smiles[:50], out=tmp_path / "b", max_steps=1, progress=False,
                     autoencoder=str(vae_dir), config={"model": "gan", "lr": 1e-3})
