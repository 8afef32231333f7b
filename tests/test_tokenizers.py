import gzip
import json

import pytest

from molgen.tokenizers import OOVError, TokenizeError, load_tokenizer
from molgen.tokenizers.selfies import SelfiesTokenizer
from molgen.tokenizers.smiles import SmilesTokenizer

from .conftest import ROOT


@pytest.mark.slow
def test_smiles_regex_round_trips_every_moses_training_molecule():
    tok = SmilesTokenizer()
    with gzip.open(ROOT / "data" / "moses" / "train.csv.gz", "rt") as f:
        smiles = f.read().splitlines()[1:]
    assert len(smiles) == 1_584_663
    failures = [s for s in smiles if "".join(tok.tokenize(s)) != s]
    assert failures == []


def test_smiles_tokens_are_atoms_not_characters():
    tok = SmilesTokenizer()
    assert tok.tokenize("ClC[C@@H](Br)c1cc[nH]c1%12") == [
        "Cl", "C", "[C@@H]", "(", "Br", ")", "c", "1", "c", "c", "[nH]", "c", "1", "%12"]
    with pytest.raises(TokenizeError):
        tok.tokenize("C{C}")


def test_encode_decode_round_trip_with_special_tokens(tiny_train_smiles):
    tok = SmilesTokenizer().fit(tiny_train_smiles)
    assert tok.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    for s in tiny_train_smiles[:200]:
        ids = tok.encode(s)
        assert min(ids) >= 4
        assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id, 7]) == s


def test_oov_error_names_the_token_and_unk_policy_maps_it():
    tok = SmilesTokenizer().fit(["CCO", "c1ccccc1"])
    with pytest.raises(OOVError) as e:
        tok.encode("CCBr")
    assert e.value.token == "Br"
    lenient = SmilesTokenizer(vocab=tok.itos, oov="unk")
    assert lenient.encode("CCBr")[-1] == lenient.unk_id
    # special tokens typed into an input are never accepted as themselves
    with pytest.raises(OOVError):
        tok.tokens_to_ids(["<eos>"])


def test_state_is_json_and_round_trips(tmp_path, tiny_train_smiles):
    for cls in (SmilesTokenizer, SelfiesTokenizer):
        tok = cls(oov="unk").fit(tiny_train_smiles[:100])
        tok.save(tmp_path / "t.json")
        back = load_tokenizer(tmp_path / "t.json")
        assert type(back) is cls and back.itos == tok.itos and back.oov == "unk"
        assert back.state_key == tok.state_key


def test_corrupt_or_foreign_state_is_a_clear_error(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_tokenizer(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"name": "smiles", "vocab": ["C"]}))
    with pytest.raises(ValueError, match="not a molgen tokenizer"):
        load_tokenizer(tmp_path / "b.json")


def test_selfies_round_trip_to_the_same_canonical_molecule(tiny_train_smiles):
    from molgen.chem import canonicalize

    tok = SelfiesTokenizer().fit(tiny_train_smiles)
    for s in tiny_train_smiles[:200]:
        assert canonicalize(tok.decode(tok.encode(s))) == s


def test_selfies_unknown_symbol_is_oov():
    tok = SelfiesTokenizer().fit(["CCO"])
    with pytest.raises(OOVError):
        tok.encode("CCN")


def test_kekule_smiles_is_one_aromatic_free_string_per_molecule(tiny_train_smiles, tmp_path):
    from molgen.chem import canonicalize
    from molgen.tokenizers.smiles import KekuleSmilesTokenizer, kekule_smiles

    tok = KekuleSmilesTokenizer().fit(tiny_train_smiles)
    assert tok.likelihood_object == "canonical-kekule-smiles"
    assert not any(t in tok.stoi for t in ("c", "n", "o", "s", "[nH]"))  # no aromatic symbols at all
    assert any("c" in s for s in tiny_train_smiles[:50])  # ... although the data are aromatic
    for s in tiny_train_smiles[:200]:
        assert canonicalize(tok.decode(tok.encode(s))) == s  # the same molecule back
    # a function of the molecule: every way of writing it gives the one string
    assert kekule_smiles("c1ccccc1O") == kekule_smiles("Oc1ccccc1") == kekule_smiles("OC1=CC=CC=C1")
    with pytest.raises(TokenizeError, match="cannot parse"):
        tok.encode("C1CC")
    with pytest.raises(TokenizeError, match=r"cannot (parse|kekulize)"):  # a ring RDKit cannot kekulize
        kekule_smiles("c1cccc1")
    tok.save(tmp_path / "k.json")
    assert isinstance(load_tokenizer(tmp_path / "k.json"), KekuleSmilesTokenizer)
