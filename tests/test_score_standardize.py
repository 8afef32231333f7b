"""Scoring real libraries (issue 22): explicit standardisation options, the ``standardized`` column,
the ``oov_token`` note's suggestion, and one SMILES spelling of a token across representations."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from molgen.chem import canonicalize, restandardize
from molgen.errors import ConfigError, OptionError
from molgen.registry import MODELS
from molgen.scoring import COLUMNS, like_training
from molgen.tokenizers.selfies import SelfiesTokenizer, smiles_atom
from molgen.tokenizers.smiles import SmilesTokenizer

from .conftest import TINY_MODEL_ARGS

ALANINE = "N[C@@H](C)C(=O)O"  # L-alanine: a stereocentre, [C@H] once canonical
ASPIRIN_NA = "CC(=O)Oc1ccccc1C(=O)[O-].[Na+]"  # sodium aspirin: the salt goes, the carboxylate stays
LABELLED = "[13CH3]O"  # an isotope label
ZWITTERION_ALA = "N[C@@H](C)C(=O)[O-]"  # needs stereo and charge both
QUAT = "C[N+](C)(C)C"  # a genuinely charged species: the Uncharger keeps it
ROWS = [ALANINE, ASPIRIN_NA, LABELLED]


def _tiny(tokenizer):
    torch.manual_seed(0)
    return MODELS.get("transformer").build({**TINY_MODEL_ARGS["transformer"], "max_len": 60},
                                           representation=tokenizer).eval()


@pytest.fixture(scope="module")
def model(smiles_tokenizer):
    """An untrained tiny transformer over a vocabulary fitted on stereo-free, neutral MOSES molecules."""
    return _tiny(smiles_tokenizer)


@pytest.fixture(scope="module")
def selfies_model(tiny_train_smiles):
    return _tiny(SelfiesTokenizer().fit(tiny_train_smiles))


def test_strict_default_is_unchanged(model):
    df = model.score([*ROWS, "CCO"])
    assert list(df.columns) == COLUMNS and "standardized" in COLUMNS
    assert df.status.tolist() == ["oov_token:[C@H]", "oov_token:[O-]", "oov_token:[13CH3]", "ok"]
    assert df.canonical.tolist() == [canonicalize(s) for s in [*ROWS, "CCO"]]  # the input molecule itself
    assert df.standardized.tolist() == ["", "", "", ""]
    assert df.attrs["standardize"] == []


@pytest.mark.parametrize("option, row, canonical, change", [
    ("strip_stereo", ALANINE, "CC(N)C(=O)O", "stereo"),
    ("neutralize", ASPIRIN_NA, "CC(=O)Oc1ccccc1C(=O)O", "charge"),
    ("strip_isotopes", LABELLED, "CO", "isotope"),
])
def test_each_option_scores_its_row_and_says_so(model, option, row, canonical, change):
    df = model.score(ROWS, **{option: True})
    i = ROWS.index(row)
    assert df.status[i] == "ok" and df.canonical[i] == canonical and df.standardized[i] == change
    # the number is the standardised molecule's own
    assert df.log_likelihood[i] == pytest.approx(model.score([canonical]).log_likelihood[0])
    # a change is listed only where it changed the molecule: the other rows stay as they were
    others = [j for j in range(len(ROWS)) if j != i]
    assert (df.standardized[others] == "").all() and df.status[others].str.startswith("oov_token:").all()


def test_changes_are_listed_in_a_fixed_order(model):
    df = model.score([ZWITTERION_ALA, QUAT, "CCO"], neutralize=True, strip_isotopes=True, strip_stereo=True)
    assert df.standardized.tolist() == ["stereo,charge", "", ""]
    assert df.status.tolist() == ["ok", "oov_token:[N+]", "ok"]  # the quaternary ammonium stays charged
    assert df.attrs["standardize"] == ["stereo", "charge", "isotope"]
    assert restandardize(canonicalize(ZWITTERION_ALA), ["charge", "stereo"]) == ("CC(N)C(=O)O",
                                                                                 ("stereo", "charge"))
    with pytest.raises(ConfigError, match="accepted: charge, isotope, stereo"):
        restandardize("CCO", ["tautomer"])


def test_like_training_follows_the_vocabulary(model, tiny_train_smiles):
    assert model.tokenizer.expressible() == frozenset()
    assert like_training(model) == ("stereo", "charge", "isotope")
    df = model.score([*ROWS, ZWITTERION_ALA, QUAT], standardize="like-training")
    assert df.status.tolist() == ["ok", "ok", "ok", "ok", "oov_token:[N+]"]
    assert df.standardized.tolist() == ["stereo", "charge", "isotope", "stereo,charge", ""]
    # a vocabulary that writes stereo keeps it: like-training strips only what the data lacked
    chiral = _tiny(SmilesTokenizer().fit([*tiny_train_smiles, "C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"]))
    assert chiral.tokenizer.expressible() == frozenset({"stereo"})
    assert like_training(chiral) == ("charge", "isotope")
    df = chiral.score([ALANINE, ASPIRIN_NA], standardize="like-training")
    assert df.status.tolist() == ["ok", "ok"] and df.standardized.tolist() == ["", "charge"]
    assert df.canonical[0] == "C[C@H](N)C(=O)O"


def test_oov_note_names_the_option_that_would_score_the_row(model):
    df = model.score([*ROWS, ZWITTERION_ALA, QUAT, "CC[Se]CC"])
    notes = df.note.tolist()
    assert notes[0].endswith("token(s) [C@H] not in the vocabulary; --strip-stereo (strip_stereo=True) would score it")
    assert notes[1].endswith("; --neutralize (neutralize=True) would score it")
    assert notes[2].endswith("; --strip-isotopes (strip_isotopes=True) would score it")
    assert notes[3].endswith("; --strip-stereo --neutralize (strip_stereo=True, neutralize=True) would score it")
    assert "would score" not in notes[4] and "would score" not in notes[5]  # no option removes [N+] / [Se]
    # an option already given is not suggested again; what is still missing is
    df = model.score([ZWITTERION_ALA], strip_stereo=True)
    assert df.status[0] == "oov_token:[O-]" and df.standardized[0] == "stereo"
    assert df.note[0].endswith("; --neutralize (neutralize=True) would score it")


def test_smiles_and_selfies_models_spell_a_token_the_same(model, selfies_model):
    rows = [*ROWS, "C[NH3+]", "O=[N+]([O-])c1ccccc1"]
    want = ["oov_token:[C@H]", "oov_token:[O-]", "oov_token:[13CH3]", "oov_token:[NH3+]", "oov_token:[N+],[O-]"]
    a, b = model.score(rows), selfies_model.score(rows)
    assert a.status.tolist() == want and b.status.tolist() == want
    assert a.note.tolist() == b.note.tolist()
    assert not any(s in n for n in b.note for s in ("[O-1]", "[C@H1]", "[N+1]", "[NH3+1]"))


@pytest.mark.parametrize("symbol, atom", [
    ("[O-1]", "[O-]"), ("[N+1]", "[N+]"), ("[=N+1]", "[N+]"), ("[C@H1]", "[C@H]"), ("[C@@H1]", "[C@@H]"),
    ("[NH1]", "[NH]"), ("[NH4+1]", "[NH4+]"), ("[13CH3]", "[13CH3]"), ("[Fe+2]", "[Fe+2]"), ("[CH0]", "[C]"),
    ("[C]", "C"), ("[=C]", "C"), ("[Cl]", "Cl"), ("[Se]", "[Se]"), ("[Branch1]", "[Branch1]"),
    ("[=Branch1]", "[=Branch1]"), ("[Ring1]", "[Ring1]"), ("[=Ring2]", "[=Ring2]"), ("<unk>", "<unk>"),
])
def test_selfies_symbol_as_smiles_atom(symbol, atom):
    assert smiles_atom(symbol) == atom
    assert SelfiesTokenizer(vocab=["[C]"]).smiles_spelling(symbol) == atom


def test_smiles_tokens_are_spelt_as_they_are():
    tok = SmilesTokenizer(vocab=["C"])
    assert [tok.smiles_spelling(t) for t in ("[C]", "[O-]", "[C@H]", "[13CH3]")] == ["[C]", "[O-]", "[C@H]", "[13CH3]"]


def test_bad_options_are_refused_with_the_accepted_ones(model):
    with pytest.raises(OptionError, match=r"strip_sterio.*accepted: .*strip_stereo, neutralize, strip_isotopes, "
                                          r"standardize"):
        model.score(ROWS, strip_sterio=True)
    with pytest.raises(ConfigError, match="standardize must be one of None, like-training"):
        model.score(ROWS, standardize="like-moses")
    with pytest.raises(ConfigError, match="strip_stereo must be True or False"):
        model.score(ROWS, strip_stereo="yes")


def test_cli_score_options_and_column(model, tmp_path):
    from molgen.cli.main import main

    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    lib = tmp_path / "lib.smi"
    lib.write_text("\n".join([*ROWS, QUAT, "CCO"]) + "\n")

    def run(*flags: str) -> pd.DataFrame:
        out = tmp_path / "scores.csv"
        assert main(["score", str(lib), "--model", str(model_dir), "-o", str(out), "-q", *flags]) == 0
        return pd.read_csv(out, keep_default_na=False)

    df = run()
    assert "standardized" in df.columns and (df.standardized == "").all()
    assert df.status.tolist() == ["oov_token:[C@H]", "oov_token:[O-]", "oov_token:[13CH3]", "oov_token:[N+]", "ok"]
    assert "--strip-stereo (strip_stereo=True) would score it" in df.note[0]
    df = run("--strip-stereo", "--neutralize")
    assert df.standardized.tolist() == ["stereo", "charge", "", "", ""]
    assert df.status.tolist()[:3] == ["ok", "ok", "oov_token:[13CH3]"]
    df = run("--standardize", "like-training")
    assert df.standardized.tolist() == ["stereo", "charge", "isotope", "", ""]
    assert df.status.tolist() == ["ok", "ok", "ok", "oov_token:[N+]", "ok"]
    assert main(["score", str(lib), "--model", str(model_dir), "-o", str(tmp_path / "x.csv"), "-q",
                 "--standardize", "everything"]) == 2
