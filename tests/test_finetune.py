"""Fine-tuning: the base representation and weights are the starting point, unrepresentable molecules
are counted by status (never silently dropped), the parent and data are recorded, freezing works."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from molgen.errors import ConfigError, OptionError

from .conftest import TINY_MODEL_ARGS

BAD = ["not_a_smiles", "C[Se]C", "CCO" * 40]  # invalid, a token the base never saw, longer than max_len


@pytest.fixture(scope="module")
def base_dir(trained_transformer, tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    trained_transformer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def focused(moses_test_smiles):
    return moses_test_smiles[1000:1080]  # not in the base model's training data (the first 600)


@pytest.fixture(scope="module")
def tuned(base_dir, focused, tmp_path_factory):
    import molgen

    out = tmp_path_factory.mktemp("ft") / "ft"
    model = molgen.finetune(base_dir, [*focused, *BAD], out, max_epochs=6, lr=3e-3, warmup_steps=2,
                            batch_size=16, freeze="embeddings", progress=False, precision="32-true", num_threads=1)
    return model, out


def test_finetune_keeps_representation_and_lowers_nll(tuned, base_dir, focused):
    import molgen

    model, out = tuned
    base = molgen.load(base_dir)
    assert model.representation.state_key == base.representation.state_key  # the same vocabulary
    assert model.max_len == base.max_len
    before = -base.score(focused).log_likelihood.mean()
    after = -model.score(focused).log_likelihood.mean()
    assert after < before - 1.0, (before, after)
    reloaded = molgen.load(out)
    assert reloaded.representation.state_key == base.representation.state_key
    assert torch.equal(reloaded.net.tok_emb.weight, base.net.tok_emb.weight)  # frozen: unchanged
    assert not torch.equal(reloaded.net.blocks[0].attn.qkv.weight, base.net.blocks[0].attn.qkv.weight)  # trained
    assert all(p.requires_grad for p in model.parameters())  # the returned model is not left frozen


def test_finetune_reports_unrepresentable_rows_and_records_parent(tuned, base_dir, focused):
    model, out = tuned
    meta = json.loads((out / "metadata.json").read_text())["finetune"]
    assert meta["data"]["rows"] == len(focused) + 3 and meta["data"]["left_out"] == 3
    assert meta["data"]["status_counts"] == {"ok": len(focused), "invalid_smiles": 1, "oov_token": 1, "too_long": 1}
    rows = pd.read_csv(out / meta["data"]["rows_file"], keep_default_na=False)
    assert len(rows) == len(focused) + 3
    assert rows.status.tolist()[-3:] == ["invalid_smiles", "oov_token:[Se]", "too_long"]
    assert meta["parent"]["path"] == str(base_dir.resolve()) and len(meta["parent"]["config_sha256"]) == 64
    assert len(meta["parent"]["weights_sha256"]) == 64 and meta["parent"]["data"]["n_train"] > 0
    assert len(meta["data"]["sha256"]) == 16 and meta["freeze"] == ["embeddings"]
    assert meta["finetune_set_nll"]["after"] < meta["finetune_set_nll"]["before"]
    assert (out / "curves.csv").exists() and (out / "curves.png").stat().st_size > 1000
    assert "fine-tuned from" in repr(model)


def test_finetune_options_are_checked(base_dir, focused, tmp_path):
    import molgen

    with pytest.raises(ConfigError, match=r"accepted: embeddings, blocks:N \(N = 1..2\)"):
        molgen.finetune(base_dir, focused, tmp_path / "x", freeze="decoder")
    with pytest.raises(OptionError, match="max_epochs"):
        molgen.finetune(base_dir, focused, tmp_path / "x", epochs=3)
    with pytest.raises(ValueError, match="only 0 distinct"):
        molgen.finetune(base_dir, BAD, tmp_path / "x")
    with pytest.raises(ConfigError, match="representation cannot be given"):  # train() from a model keeps it
        molgen.train(molgen.load(base_dir), data=focused, out=tmp_path / "x", representation="selfies")
    assert not (tmp_path / "x").exists()


def test_cli_finetune_freeze_error_is_one_line(base_dir, tmp_path, capsys):
    from molgen.cli.main import main

    data = tmp_path / "actives.smi"
    data.write_text("CCO\nc1ccccc1\n")
    rc = main(["finetune", "--from", str(base_dir), "--data", str(data), "--out", str(tmp_path / "o"),
               "--freeze", "blocks:9"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "accepted: embeddings" in err


@pytest.mark.slow
@pytest.mark.parametrize("family", ["transformer", "vae", "diffusion", "flow"])
def test_finetune_every_family_with_a_likelihood(family, tiny_train_smiles, moses_test_smiles, tmp_path):
    import molgen

    base = molgen.train(family, data=tiny_train_smiles[:300], out=tmp_path / "base", max_steps=6, val_size=30,
                        batch_size=32, warmup_steps=1, progress=False, precision="32-true", num_threads=1,
                        model_args=TINY_MODEL_ARGS[family])
    tuned = molgen.finetune(base, moses_test_smiles[1000:1064], tmp_path / "ft", max_steps=4, batch_size=16,
                            progress=False, precision="32-true", num_threads=1)
    assert tuned.representation.state_key == base.representation.state_key and tuned.max_len == base.max_len
    assert tuned.metadata["finetune"]["parent"]["path"] is None  # started from a model in memory
    assert tuned.metadata["training"]["steps"] == 4
    assert molgen.load(tmp_path / "ft").score(["CCO"]).status.tolist() == ["ok"]
