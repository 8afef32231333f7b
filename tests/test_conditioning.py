"""Property conditioning: the condition space, guidance arithmetic, and conditional training end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import molgen
from molgen.conditioning import ConditionSpace, ConditionWarning, compute_properties, parse_condition
from molgen.conditioning_nn import ConditionEmbedding, drop_conditions, guided_log_probs
from molgen.errors import ConfigError

from .conftest import TINY_MODEL_ARGS


def test_condition_space_standardises_checks_names_and_warns_out_of_range():
    values = np.array([[0.5, 1.0], [0.7, np.nan], [0.9, 3.0]])
    space = ConditionSpace.fit(["qed", "logp"], values)
    assert space.mean == pytest.approx([0.7, 2.0]) and space.lo == pytest.approx([0.5, 1.0])
    z, present = space.standardize(values)
    assert present.tolist() == [[1, 1], [1, 0], [1, 1]] and z[1, 1] == 0.0  # NaN = absent, never dropped
    assert z[0, 0] == pytest.approx((0.5 - 0.7) / space.std[0])
    assert ConditionSpace.from_dict(space.to_dict()) == space
    with pytest.raises(ConfigError, match="not trained on \\['mw'\\]; it is conditioned on qed, logp"):
        space.check({"mw": 300})
    with pytest.raises(ConfigError, match="finite number"):
        space.check({"qed": float("nan")})
    with pytest.warns(ConditionWarning, match=r"outside the training range \[0.5, 0.9\]"):
        space.check({"qed": 0.95})
    b = space.batch({"logp": 2.0}, 3)
    assert b["cond"].shape == (3, 2) and b["cond_present"].tolist() == [[0, 1]] * 3


def test_parse_condition_from_the_command_line():
    assert parse_condition(["qed=0.9", "logp = 2.5"]) == {"qed": 0.9, "logp": 2.5}
    assert parse_condition([]) is None
    for bad in ("qed", "qed=high", "=1"):
        with pytest.raises(ConfigError, match="NAME=NUMBER"):
            parse_condition([bad])


def test_guidance_formula_renormalises_and_keeps_impossible_tokens_impossible():
    torch.manual_seed(0)
    lc = torch.log_softmax(torch.randn(4, 6), -1)
    lu = torch.log_softmax(torch.randn(4, 6), -1)
    lc[:, 0] = lu[:, 0] = float("-inf")  # a banned token
    assert torch.equal(guided_log_probs(lc, lu, 0.0), lc)  # w = 0: the conditional model
    g = guided_log_probs(lc, lu, 2.0)
    assert torch.allclose(g.exp().sum(-1), torch.ones(4))
    assert torch.isinf(g[:, 0]).all() and torch.isfinite(g[:, 1:]).all()
    expected = torch.log_softmax(3 * lc[:, 1:] - 2 * lu[:, 1:], -1)
    assert torch.allclose(g[:, 1:], expected, atol=1e-6)


def test_condition_dropout_and_the_null_embedding():
    present = torch.ones(4000, 2)
    kept = drop_conditions(present, 0.1, torch.Generator().manual_seed(0))
    both_dropped = (kept.sum(1) == 0).float().mean().item()
    assert 0.08 < both_dropped < 0.14  # whole-condition drops (0.1) plus both single drops (0.01 * 0.9)
    assert 0.15 < (kept[:, 0] == 0).float().mean().item() < 0.23  # each property alone: 1 - 0.9 * 0.9
    emb = ConditionEmbedding(2, 8)
    null = emb(torch.randn(3, 2), torch.zeros(3, 2))  # absent values are not seen
    assert torch.allclose(null, null[:1].expand(3, -1))


def test_rdkit_properties_are_row_aligned_with_nan_for_bad_rows():
    v = compute_properties(["CCO", "not a smiles", "c1ccccc1"], ["mw", "logp"])
    assert v.shape == (3, 2) and np.isnan(v[1]).all()
    assert v[0, 0] == pytest.approx(46.07, abs=0.01) and v[2, 1] > v[0, 1]
    with pytest.raises(ConfigError, match="known: qed, logp, sa, mw, tpsa"):
        compute_properties(["CCO"], ["colour"])


TINY = TINY_MODEL_ARGS["transformer"]


@pytest.fixture(scope="module")
def alkanes_and_alcohols():
    """A toy language whose molecular weight is set by the chain length: what mw conditioning must learn."""
    chains = ["C" * n for n in range(1, 13)] + ["C" * n + "O" for n in range(1, 13)]
    return chains * 20


@pytest.fixture(scope="module", params=["transformer", "diffusion"])
def mw_model(request, tmp_path_factory, alkanes_and_alcohols):
    out = tmp_path_factory.mktemp("cond")
    return molgen.train(request.param, data=alkanes_and_alcohols, out=out, conditions=["mw"], max_steps=250,
                        val_every=1000, val_size=24, batch_size=32, lr=1e-2, warmup_steps=10, progress=False,
                        precision="32-true", num_threads=1, model_args=TINY_MODEL_ARGS[request.param],
                        cond_dropout=0.2)


def test_a_mw_condition_moves_sampled_molecular_weight_the_right_way(mw_model):
    assert "conditional" in mw_model.capabilities
    assert mw_model.metadata["data"]["conditions"] == {"names": ["mw"], "missing_values": {"mw": 0}}

    def mean_mw(res) -> float:
        v = compute_properties([c for c in res.canonical if c], ["mw"])[:, 0]
        return float(np.nanmean(v))

    low = mean_mw(mw_model.sample(200, seed=0, condition={"mw": 40.0}))
    high = mean_mw(mw_model.sample(200, seed=0, condition={"mw": 170.0}))
    free = mean_mw(mw_model.sample(200, seed=0))
    assert low < free < high and high - low > 60, (low, free, high)
    guided = mean_mw(mw_model.sample(200, seed=0, condition={"mw": 170.0}, guidance=2.0))
    assert guided > free


def test_conditional_model_round_trips_and_scores_log_p_given_c(mw_model, tmp_path):
    mw_model.save_pretrained(tmp_path / "m")
    back = molgen.load(tmp_path / "m")
    assert back.condition_space == mw_model.condition_space
    a = mw_model.score(["CCCCCCCC", "CO"], condition={"mw": 114.0})
    b = back.score(["CCCCCCCC", "CO"], condition={"mw": 114.0})
    assert np.allclose(a.log_likelihood, b.log_likelihood)
    # the condition agrees with octane and not with methanol: log p(x | c) says so
    u = mw_model.score(["CCCCCCCC", "CO"])
    assert a.log_likelihood[0] > u.log_likelihood[0] and a.log_likelihood[1] < u.log_likelihood[1]


def test_train_refuses_conditions_a_family_or_file_cannot_give(tmp_path, alkanes_and_alcohols):
    with pytest.raises(ConfigError, match=r"cannot be conditioned; conditional families: .*transformer"):
        molgen.train("vae", data=alkanes_and_alcohols, out=tmp_path / "v", conditions=["qed"], max_steps=1)
    with pytest.raises(ConfigError, match=r"numeric columns of a \.csv"):
        molgen.train("transformer", data=alkanes_and_alcohols, out=tmp_path / "t", conditions=["pIC50"],
                     max_steps=1)


def test_a_numeric_column_of_the_training_file_is_a_condition(tmp_path):
    chains = ["C" * n for n in range(1, 13)] * 5
    df = pd.DataFrame({"smiles": chains, "activity": [len(s) / 2 for s in chains]})
    df.loc[3, "activity"] = np.nan  # a missing value: the row trains unconditionally, never dropped
    path = tmp_path / "act.csv"
    df.to_csv(path, index=False)
    m = molgen.train("transformer", data=path, out=tmp_path / "m", conditions=["activity"], max_steps=3,
                     val_size=6, batch_size=16, progress=False, precision="32-true", num_threads=1, model_args=TINY)
    assert m.condition_space.names == ["activity"] and m.condition_space.sources == ["column"]
    assert m.condition_space.lo[0] == 0.5 and m.condition_space.hi[0] == 6.0
    with pytest.raises(ConfigError, match="no column\\(s\\) \\['potency'\\]"):
        molgen.train("transformer", data=path, out=tmp_path / "n", conditions=["potency"], max_steps=1)


def test_cli_samples_and_scores_towards_a_condition(mw_model, tmp_path, capsys):
    from molgen.cli.main import main

    mw_model.save_pretrained(tmp_path / "m")
    m, out = str(tmp_path / "m"), str(tmp_path / "s.csv")
    assert main(["sample", "--model", m, "-n", "8", "-o", out, "--seed", "0", "--condition", "mw=100",
                 "--guidance", "1"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 8 and (df.condition == "mw=100").all() and (df.guidance == 1.0).all()
    assert (df.sampler == "ancestral+cfg-w1").all() and "log_likelihood" not in df  # guided: no likelihood
    assert main(["sample", "--model", m, "-n", "2", "-o", out, "--condition", "qed=0.5"]) == 2
    assert "not trained on ['qed']; it is conditioned on mw" in capsys.readouterr().err
    (tmp_path / "in.smi").write_text("CCCC\nnot-a-smiles\nCCO\n")
    assert main(["score", str(tmp_path / "in.smi"), "--model", m, "-o", str(tmp_path / "sc.csv"),
                 "--condition", "mw=58"]) == 0
    sc = pd.read_csv(tmp_path / "sc.csv")
    assert sc.status.tolist() == ["ok", "invalid_smiles", "ok"] and (sc.condition == "mw=58").all()


def test_finetuning_a_conditional_model_keeps_its_condition_space_and_guidance(mw_model, tmp_path):
    """Fine-tuning data get the model's own properties (RDKit mw here); the space is not refitted."""
    focused = ["C" * n + "O" for n in range(6, 13)] * 4  # long alcohols only
    tuned = molgen.finetune(mw_model, focused, tmp_path / "ft", max_steps=20, lr=1e-3, batch_size=8,
                            val_size=4, progress=False, precision="32-true", num_threads=1)
    assert tuned.condition_space == mw_model.condition_space
    cond = tuned.metadata["data"]["conditions"]
    assert cond["names"] == ["mw"] and cond["missing_values"] == {"mw": 0}
    assert tuned.condition_space == molgen.load(tmp_path / "ft").condition_space
    s = tuned.sample(50, seed=0, condition={"mw": 150.0}, guidance=1.0)
    assert len(s.smiles) == 50 and s.validity > 0.5
    # the fine-tuned model prefers the focused alcohols at their own molecular weight
    x = ["CCCCCCCCO"]
    assert (tuned.score(x, condition={"mw": 130.2}).log_likelihood[0]
            > mw_model.score(x, condition={"mw": 130.2}).log_likelihood[0])


def test_finetuning_on_a_data_column_condition_reads_the_finetuning_file(tmp_path):
    chains = ["C" * n for n in range(1, 13)] * 5
    df = pd.DataFrame({"smiles": chains, "activity": [len(s) / 2 for s in chains]})
    df.to_csv(tmp_path / "act.csv", index=False)
    m = molgen.train("transformer", data=tmp_path / "act.csv", out=tmp_path / "m", conditions=["activity"],
                     max_steps=3, val_size=6, batch_size=16, progress=False, precision="32-true", num_threads=1,
                     model_args=TINY)
    ft = pd.DataFrame({"smiles": ["CCCCC", "CCCCCC", "CCCCCCC", "CCC"], "activity": [7.0, 7.5, np.nan, 8.0]})
    ft.to_csv(tmp_path / "ft.csv", index=False)
    tuned = molgen.finetune(m, tmp_path / "ft.csv", tmp_path / "ft", max_steps=2, batch_size=4, val_size=1,
                            progress=False, precision="32-true", num_threads=1)
    assert tuned.condition_space == m.condition_space  # 7-8 lie outside the training range: kept, not refitted
    assert tuned.metadata["data"]["conditions"]["missing_values"] == {"activity": 1}
    with pytest.raises(ConfigError, match=r"numeric columns of a \.csv"):  # a plain list has no columns
        molgen.finetune(m, ["CCCC", "CCCCC", "CCO"], tmp_path / "ft2", max_steps=1, progress=False)
