"""Library scoring: one row per input, in order, with the right status; never raises per row."""

import numpy as np
import pandas as pd

from molgen.scoring import COLUMNS


def test_bad_rows_keep_their_place_and_status(trained_transformer, tiny_train_smiles):
    model = trained_transformer
    good = tiny_train_smiles[0]
    rows = [good, "not a smiles", "", None, "C1CC", "CC[Se]CC", "C" * 200, good + ".[Na+]",
            "c1ccccc1" if "c" in model.tokenizer.stoi else good, good]
    df = model.score(rows)
    assert list(df.columns) == COLUMNS
    assert len(df) == len(rows)
    assert df.input.tolist()[:3] == rows[:3]
    assert df.status.tolist() == ["ok", "invalid_smiles", "invalid_smiles", "invalid_smiles",
                                  "invalid_smiles", "oov_token:[Se]", "too_long", "ok", "ok", "ok"]
    ok = df.status == "ok"
    assert np.isfinite(df.log_likelihood[ok]).all() and df.log_likelihood[~ok].isna().all()
    # the salt is stripped by the policy, so the parent scores exactly like the parent
    assert df.log_likelihood[7] == df.log_likelihood[0] == df.log_likelihood[9]
    assert (df.likelihood_kind == "exact").all() and (df.likelihood_object == "canonical-smiles").all()
    np.testing.assert_allclose(df.nll_per_token[ok], -df.log_likelihood[ok] / df.n_tokens[ok])


def test_scores_do_not_depend_on_batching(trained_transformer, tiny_train_smiles):
    a = trained_transformer.score(tiny_train_smiles[:40], batch_size=7)
    b = trained_transformer.score(tiny_train_smiles[:40], batch_size=512)
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-5)


def test_nan_likelihood_becomes_an_error_row(trained_transformer, tiny_train_smiles, monkeypatch):
    import torch

    model = trained_transformer
    real = model.log_likelihood

    def poisoned(batch, **kw):
        out = real(batch, **kw)
        out[0] = float("nan")
        return out

    monkeypatch.setattr(model, "log_likelihood", poisoned)
    df = model.score(tiny_train_smiles[:3], batch_size=1)
    assert df.status.tolist() == ["error", "error", "error"]
    assert df.log_likelihood.isna().all()
    monkeypatch.setattr(model, "log_likelihood", real)
    assert torch.is_grad_enabled()


def test_stream_scoring_of_a_file_writes_every_row(trained_transformer, tiny_train_smiles, tmp_path):
    from molgen.scoring import iter_score_file, write_scores

    rows = [*tiny_train_smiles[:25], "garbage", "", *tiny_train_smiles[25:30]]
    src = tmp_path / "lib.csv"
    pd.DataFrame({"id": range(len(rows)), "smi": rows}).to_csv(src, index=False)
    for out in (tmp_path / "out.csv", tmp_path / "out.parquet"):
        n = write_scores(iter_score_file(trained_transformer, src, smiles_col="smi", chunk_size=8), out)
        df = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out, keep_default_na=False)
        assert n == len(df) == len(rows)
        assert df.status.tolist()[25:27] == ["invalid_smiles", "invalid_smiles"]
        assert (df.status == "ok").sum() == 30
