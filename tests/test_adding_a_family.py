"""docs/adding-a-family.md, followed step by step: its code blocks run in order, and each step's checks.

The page's example family (a bigram model over SMILES tokens) is defined by the page itself, so when
the contract or the pipeline changes, this test fails until the page says how to write a family again.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

import molgen
from molgen.registry import MODELS

from . import test_contract as contract
from .conftest import ROOT

DOC = ROOT / "docs" / "adding-a-family.md"


def code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_a_block_per_step():
    text = DOC.read_text()
    steps = re.findall(r"^## Step (\d): ", text, flags=re.M)
    assert steps == ["1", "2", "3", "4"]
    assert len(code_blocks()) == 3  # the config, the family, training it through the pipeline


def test_the_files_the_page_names_exist_and_hold_what_it_says():
    text = DOC.read_text()
    for path in sorted(set(re.findall(r"`((?:molgen|tests|docs)/[\w/.-]+\.(?:py|md|yaml))`", text))):
        assert (ROOT / path).exists(), f"docs/adding-a-family.md names {path}, which does not exist"
    assert (ROOT / "molgen" / "configs").is_dir()
    assert "TINY_MODEL_ARGS" in (ROOT / "tests" / "conftest.py").read_text()
    assert "MODELS_TABLE" in (ROOT / "molgen" / "cli" / "models_table.py").read_text()
    assert "_BLOCK = re.compile" in (ROOT / "molgen" / "training" / "finetune.py").read_text()
    assert "def default_callbacks" in (ROOT / "molgen" / "models" / "base.py").read_text()
    assert "class NestedRole" in (ROOT / "molgen" / "models" / "base.py").read_text()


@pytest.fixture(scope="module")
def family():
    """Steps 1 and 2: the page's config and family, registered for this module only."""
    module = types.ModuleType("adding_a_family_doc")  # a real module: dataclasses look their own up
    sys.modules[module.__name__] = module
    try:
        with MODELS.scoped():
            for block in code_blocks()[:2]:
                exec(compile(block, str(DOC), "exec"), module.__dict__)
            assert "bigram" in MODELS and MODELS.get("bigram") is module.BigramModel
            yield module.__dict__
        assert "bigram" not in MODELS  # the registration is undone after the module's tests
    finally:
        del sys.modules[module.__name__]


def test_step_3_the_unchanged_pipeline_trains_samples_scores_saves_and_loads(family, tiny_train_smiles,
                                                                             tmp_path):
    namespace = {**family, "molgen": molgen, "smiles": tiny_train_smiles[:300], "out": tmp_path}
    exec(compile(code_blocks()[2], str(DOC), "exec"), namespace)
    model, samples, scores, again = (namespace[k] for k in ("model", "samples", "scores", "again"))
    assert model.name == "bigram" and model.metadata["training"]["steps"] == 60
    assert len(samples) == 50 and samples.log_likelihood is not None and len(samples.valid) == 50
    fresh = type(model).build({"emb_dim": 16, "max_len": model.max_len}, representation=model.representation)
    train_rows = tiny_train_smiles[:50]
    assert model.score(train_rows).log_likelihood.mean() > fresh.score(train_rows).log_likelihood.mean() + 10
    assert scores.status.tolist() == ["ok", "invalid_smiles"]
    label = scores.iloc[0]
    assert (label.likelihood_kind, label.likelihood_unit) == ("exact", "nats/molecule")
    assert label.likelihood_object == "canonical-smiles"
    assert type(again).__name__ == "BigramModel"
    pd.testing.assert_series_equal(again.score(["CCO", "c1ccccc1"]).log_likelihood,
                                   model.score(["CCO", "c1ccccc1"]).log_likelihood)
    # the fine-tuning groups the page promises: `self.emb` is the embeddings group
    tuned = molgen.finetune(tmp_path / "bigram", tiny_train_smiles[300:340], tmp_path / "tuned", max_steps=2,
                            freeze="embeddings", progress=False, precision="32-true")
    torch.testing.assert_close(tuned.emb.weight, again.emb.weight)
    assert not torch.equal(tuned.out[1].weight, again.out[1].weight)


@pytest.fixture()
def bigram(family, smiles_tokenizer):
    torch.manual_seed(0)
    return family["BigramModel"].build({"emb_dim": 8, "max_len": 60}, representation=smiles_tokenizer).eval()


def test_step_4_the_contract_holds_for_the_new_family(bigram, tiny_train_smiles, tmp_path):
    contract.test_sample_returns_n_strings_and_records_its_seed(bigram)
    contract.test_same_seed_same_samples_other_seed_other_samples(bigram)
    contract.test_unknown_and_unsupported_options_raise_listing_what_is_accepted(bigram)
    contract.test_a_bare_string_is_an_error_not_characters(bigram)
    contract.test_sampled_log_p_equals_scored_log_p(bigram)
    contract.test_save_load_round_trip_gives_identical_likelihoods_and_samples(bigram, tmp_path,
                                                                               tiny_train_smiles)
    contract.test_score_keeps_every_row_of_a_file_with_bad_rows_in_order(bigram, tiny_train_smiles, tmp_path)
    contract.test_monte_carlo_likelihoods_are_deterministic_per_molecule(bigram, tiny_train_smiles)
    contract.test_unsupported_likelihood_kind_is_refused(bigram)


def test_a_family_that_reads_graphs_refuses_token_strings_with_the_reason(family, smiles_tokenizer):
    class GraphOnly(family["BigramModel"]):
        representation_kinds = frozenset({"graph"})

    with pytest.raises(ValueError, match="reads graph representations; 'smiles' is a tokens representation"):
        GraphOnly.build({"max_len": 60}, representation=smiles_tokenizer)


def test_the_page_is_where_the_readme_points():
    assert Path("docs/adding-a-family.md").as_posix() in (ROOT / "README.md").read_text()
