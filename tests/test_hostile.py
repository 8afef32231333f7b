"""The hostile-input corpus (tests/data/hostile/) through parse -> tokenize -> score -> sample-then-evaluate
-> filter: no crash, no row dropped or out of order, the expected status per row, and a file that cannot
be read at all is one clear error. Property tests (hypothesis, when installed) and a seeded fuzz of the
same properties (always) check tokenizer round trips and score's row alignment for any input list.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from molgen.chem import Status, standardize
from molgen.cli.main import main
from tests.conftest import ROOT

HOSTILE = ROOT / "tests" / "data" / "hostile"
CORPUS = [json.loads(line) for line in (HOSTILE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
SMILES = [r["smiles"] for r in CORPUS]
ELEMENT_OF = {"CC[Se]CC": "Se", "C[Si](C)(C)C": "Si", "[Te]": "Te", "C[Hg]Cl": "Hg", "[Na]Cl": "Na",
              "[NH3]->[Pt](<-[NH3])(Cl)Cl": "Pt", "N->[Pt](<-N)(Cl)Cl": "Pt", "[NH3][Pt]([NH3])(Cl)Cl": "Pt"}


def test_the_corpus_covers_every_hostile_category():
    cats = {r["category"] for r in CORPUS}
    assert {"empty", "whitespace", "garbage", "long_chain", "heavy_150", "salt", "mixture", "charged", "isotope",
            "stereo", "explicit_h", "wildcard", "unknown_element", "metal", "unicode"} <= cats
    assert len({r["id"] for r in CORPUS}) == len(CORPUS)
    names = {p.name for p in HOSTILE.iterdir()}
    assert {"names.smi", "quoting.csv", "truncated.smi.gz", "utf16.smi", "crlf.smi", "utf8_bom.smi"} <= names


def test_parse_never_raises_and_status_agrees_with_canonical():
    for s in SMILES:
        canonical, status = standardize(s)
        assert (canonical is None) == (status is not Status.OK), s


def test_every_row_scores_with_its_expected_status_in_order(trained_transformer):
    df = trained_transformer.score(SMILES)
    assert len(df) == len(CORPUS) and df.input.tolist() == SMILES
    for r, (_, row) in zip(CORPUS, df.iterrows()):
        assert row.status.split(":")[0] == r["status"], (r["id"], r["smiles"][:40], row.status, row.note)
        # status and canonical agree: only a row RDKit cannot read (or refuses by length) has none
        assert pd.isna(row.canonical) == (row.status in ("invalid_smiles",) or r["smiles"] == "C" * 10_001), r["id"]
        assert np.isfinite(row.log_likelihood) == (row.status == "ok")
        if row.status != "ok":
            assert row.note, (r["id"], row.status)
    for smi, element in ELEMENT_OF.items():  # an element the model never saw is named
        note = df.note[SMILES.index(smi)]
        assert f"element(s) {element}" in note or f", {element}" in note, (smi, note)
    # every unknown token is listed, not only the first
    st = df.status[SMILES.index("[NH3]->[Pt](<-[NH3])(Cl)Cl")]
    assert {"[Pt]", "<"} <= set(st.split(":", 1)[1].split(",")), st
    # salts and mixtures: the parent, said so
    i = SMILES.index("CC(=O)Oc1ccccc1C(=O)O.[Na+]")
    assert df.canonical[i] == "CC(=O)Oc1ccccc1C(=O)O" and "largest of 2 fragments" in df.note[i]


def test_dative_and_metal_forms_get_one_treatment(trained_transformer):
    forms = ["[NH3]->[Pt](<-[NH3])(Cl)Cl", "N->[Pt](<-N)(Cl)Cl", "[NH3][Pt]([NH3])(Cl)Cl"]
    df = trained_transformer.score(forms)
    assert df.canonical.nunique() == 1 and df.status.nunique() == 1 and df.canonical[0]
    from molgen.tokenizers.selfies import SelfiesTokenizer
    from molgen.tokenizers.smiles import SmilesTokenizer

    c = df.canonical[0]
    assert "".join(SmilesTokenizer().tokenize(c)) == c  # the SMILES representation can write it
    with pytest.raises(ValueError):  # SELFIES cannot: such a row is `unrepresentable`, canonical kept
        SelfiesTokenizer().tokenize(c)


def test_unrepresentable_rows_keep_their_canonical(trained_transformer, monkeypatch):
    from molgen.errors import TokenizeError

    model = trained_transformer

    def refuse(canonical):
        raise TokenizeError(f"cannot write {canonical!r}")

    monkeypatch.setattr(model, "featurize", refuse)
    df = model.score(["CCO", "xx("])
    assert df.status.tolist() == ["unrepresentable", "invalid_smiles"]
    assert df.canonical.isna().tolist() == [False, True] and df.canonical[0] == "CCO" and "cannot write" in df.note[0]


def test_a_series_keeps_its_index(trained_transformer):
    s = pd.Series(SMILES, index=[r["id"] for r in CORPUS], name="smiles")
    df = trained_transformer.score(s)
    assert df.index.tolist() == s.index.tolist() and df.input.tolist() == SMILES


def test_tokenizers_round_trip_or_refuse_every_parsable_row():
    from molgen.errors import TokenizeError
    from molgen.tokenizers.selfies import SelfiesTokenizer
    from molgen.tokenizers.smiles import SmilesTokenizer

    smi, sel = SmilesTokenizer(), SelfiesTokenizer()
    n_selfies = 0
    for s in SMILES:
        c = standardize(s)[0]
        if c is None:
            continue
        assert "".join(smi.tokenize(c)) == c
        try:
            toks = sel.tokenize(c)
        except TokenizeError:
            continue
        n_selfies += 1
        assert standardize(sel.detokenize(toks))[0] == c, c
    assert n_selfies > 10


def _score_cli(tmp_path, src, *extra):
    out = tmp_path / "scores.csv"
    rc = main(["score", str(src), "--model", str(tmp_path / "model"), "-o", str(out), "-q", *extra])
    return rc, out


@pytest.fixture()
def model_dir(trained_transformer, tmp_path):
    trained_transformer.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_file_formats_keep_every_row(model_dir, tmp_path):
    rc, out = _score_cli(tmp_path, HOSTILE / "names.smi")
    assert rc == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns[:2]) == ["name", "input"]  # the .smi name column is carried, first
    assert df.name.tolist() == ["ethanol", "benzene ring", "acetic acid 99%", "", "", "junk", "chloropropane"]
    assert df.input.tolist() == ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "", "not_a_smiles", "CCCl"]
    assert df.status.tolist()[4:6] == ["invalid_smiles", "invalid_smiles"]

    rc, out = _score_cli(tmp_path, HOSTILE / "quoting.csv", "--keep-cols", "id,note")
    assert rc == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert df.id.tolist() == [f"a{i}" for i in range(1, 9)]
    assert df.input.tolist() == ["CCO", "CC(C)O", "c1ccccc1", "CC(=O)O", "CCN", "CCCl", "", "C C"]
    assert df.note.tolist()[2] == "" and df.input_note.tolist()[2] == "two\nlines"  # clash renamed, newline kept
    assert df.status.tolist()[6:] == ["invalid_smiles", "invalid_smiles"]

    for name, rows in (("utf16.smi", ["CCO", "c1ccccc1", "CC(=O)O"]), ("utf8_bom.smi", ["CCO", "c1ccccc1", "CC(=O)O"]),
                       ("crlf.smi", ["CCO", "c1ccccc1", "", "CC(=O)O"])):
        rc, out = _score_cli(tmp_path, HOSTILE / name)
        assert rc == 0, name
        df = pd.read_csv(out, keep_default_na=False)
        assert df.input.tolist() == rows, name
        assert (df.status[df.input != ""] == "ok").all(), (name, df.status.tolist())


@pytest.mark.parametrize("name, message", [("truncated.smi.gz", "damaged or truncated|cannot be read"),
                                           ("empty.smi", "empty"), ("binary.smi", "binary"),
                                           ("missing.smi", "no such file")])
def test_a_file_that_cannot_be_read_is_one_clear_error(model_dir, tmp_path, capsys, name, message):
    import re

    rc, out = _score_cli(tmp_path, HOSTILE / name)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert err.startswith("molgen score: error:")


def test_sample_then_evaluate_and_filter_keep_hostile_rows(trained_transformer, tiny_train_smiles):
    from molgen.filtering import filter_molecules
    from molgen.metrics.evaluator import Evaluator

    samples = trained_transformer.sample(40, seed=1)
    mixed = [*samples.smiles, *SMILES]  # the 10,001-atom chain included: seconds, not minutes
    report = Evaluator(reference=tiny_train_smiles[:200], n_jobs=1, extras=False, guacamol=False,
                       use_cache=False).evaluate(mixed)
    from rdkit import Chem

    from molgen.chem import quiet_rdkit

    with quiet_rdkit():  # the metrics count validity as MOSES does: RDKit reads the string as given
        n_valid = sum(bool(s) and Chem.MolFromSmiles(s) is not None for s in mixed)
    assert report.metrics["valid"] == pytest.approx(n_valid / len(mixed)) and 0 < n_valid < len(mixed)
    df = filter_molecules(mixed, alerts=None)
    assert len(df) == len(mixed) and df.iloc[:, 0].tolist() == mixed
    invalid = df.canonical.isna()
    assert (df.reason[invalid] == "invalid").all() and not df.keep[invalid].any()


# --- properties ---------------------------------------------------------------------------------
SMILES_ALPHABET = "CNOSPFIBrcnos()[]=#-+\\/@%0123456789.*:~<>H "


def _check_tokenizer_round_trip(text: str) -> None:
    from molgen.errors import TokenizeError
    from molgen.tokenizers.smiles import SmilesTokenizer

    tok = SmilesTokenizer()
    try:
        tokens = tok.tokenize(text)
    except TokenizeError:
        return
    assert "".join(tokens) == text and tok.detokenize(tokens) == text
    c = standardize(text)[0]
    if c is not None:
        assert "".join(tok.tokenize(c)) == c  # every canonical SMILES is written exactly


def _check_alignment(model, rows: list) -> None:
    df = model.score(rows, batch_size=3)
    assert len(df) == len(rows)
    assert [x if isinstance(x, str) else None for x in df.input] == [x if isinstance(x, str) else None for x in rows]
    ok = (df.status == "ok").to_numpy()
    assert np.isfinite(df.log_likelihood.to_numpy()[ok]).all() and np.isnan(df.log_likelihood.to_numpy()[~ok]).all()
    for x, (_, r) in zip(rows, df.iterrows()):  # each row's value is that molecule's, wherever it stands
        if r.status == "ok":
            alone = model.score([x]).log_likelihood[0]
            assert r.log_likelihood == pytest.approx(alone, rel=1e-5, abs=1e-4)


def test_fuzz_tokenizer_round_trips_and_score_alignment(trained_transformer, tiny_train_smiles):
    """The hypothesis properties below, on a seeded random sample (runs without hypothesis)."""
    rng = random.Random(0)
    for _ in range(300):
        _check_tokenizer_round_trip("".join(rng.choice(SMILES_ALPHABET) for _ in range(rng.randint(0, 30))))
    pool = [*SMILES[:25], *tiny_train_smiles[:25], None, ""]
    for _ in range(2):
        _check_alignment(trained_transformer, rng.sample(pool, 10))


def test_hypothesis_properties(trained_transformer, tiny_train_smiles):
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.text(alphabet=SMILES_ALPHABET, max_size=40) | st.text(max_size=20))
    def round_trip(text):
        _check_tokenizer_round_trip(text)

    pool = [*SMILES, *tiny_train_smiles[:30], None]

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(pool) | st.text(max_size=15), max_size=12))
    def alignment(rows):
        _check_alignment(trained_transformer, rows)

    round_trip()
    alignment()
