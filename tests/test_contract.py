"""The generator contract, for every registered model family."""

import numpy as np
import pandas as pd
import pytest
import torch

from molgen.models.base import CapabilityError, GenerativeModel
from molgen.registry import MODELS
from molgen.tokenizers.smiles import SmilesTokenizer

from .conftest import TINY_MODEL_ARGS


def test_every_registered_model_has_tiny_test_arguments():
    assert set(MODELS.names()) <= set(TINY_MODEL_ARGS), "add the new family to TINY_MODEL_ARGS"


@pytest.fixture(params=MODELS.names())
def model(request, tiny_train_smiles):
    torch.manual_seed(0)
    tok = SmilesTokenizer().fit(tiny_train_smiles)
    m = MODELS.get(request.param)(tok, max_len=60, **TINY_MODEL_ARGS[request.param])
    return m.eval()


def test_declares_capabilities_and_likelihood_kind(model):
    assert isinstance(model, GenerativeModel)
    assert "sample" in model.capabilities
    if "log_likelihood" in model.capabilities:
        assert model.likelihood_kind in {"exact", "elbo", "iwae", "dequantized-bound"}
    else:
        assert model.likelihood_kind is None
        with pytest.raises(CapabilityError):
            model.score(["CCO"])


def test_sample_returns_n_strings(model):
    res = model.sample(17, seed=0, batch_size=5)
    assert len(res.smiles) == len(res.canonical) == 17
    assert all(isinstance(s, str) for s in res.smiles)
    assert res.valid.dtype == bool and res.valid.shape == (17,)


def test_log_likelihood_is_finite_and_per_molecule(model, tiny_train_smiles):
    if "log_likelihood" not in model.capabilities:
        pytest.skip("no likelihood")
    df = model.score(tiny_train_smiles[:20])
    assert len(df) == 20 and (df.status == "ok").all()
    ll = df.log_likelihood.to_numpy()
    assert np.isfinite(ll).all() and (ll < 0).all()
    # per molecule, not per token: longer molecules have (much) lower log-likelihood on average
    n = df.n_tokens.to_numpy()
    assert np.corrcoef(n, ll)[0, 1] < 0


def test_save_load_round_trip_is_identical(model, tmp_path, tiny_train_smiles):
    model.save_pretrained(tmp_path / "m")
    back = type(model).from_pretrained(tmp_path / "m")
    assert back.config() == model.config()
    assert back.sample(20, seed=5).smiles == model.sample(20, seed=5).smiles
    if "log_likelihood" in model.capabilities:
        a = model.score(tiny_train_smiles[:10]).log_likelihood
        b = back.score(tiny_train_smiles[:10]).log_likelihood
        pd.testing.assert_series_equal(a, b)
