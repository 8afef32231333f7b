"""Fragment-constrained generation (molgen.fragments): templates, the per-row state machine, the
samplers of the transformer (template completion) and diffusion (infilling), refusals, errors, the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from molgen.errors import CapabilityError, ConfigError, OptionError
from molgen.fragments import (
    TemplateBuilder,
    TemplateCompletion,
    build_template,
    constrained_sample,
    contains_fragments,
    parse_constraint,
    strategy_for,
)
from molgen.fragments.completion import AllowedMasks, RowState, TemplateConstraint
from molgen.fragments.templates import TokenClasses
from molgen.fragments.writers import selfies_unsafe_runs
from molgen.tokenizers.selfies import SelfiesTokenizer
from molgen.tokenizers.smiles import SMILES_REGEX, KekuleSmilesTokenizer, SmilesTokenizer

SMILES_VOCAB = ["C", "c", "N", "n", "O", "o", "S", "F", "Cl", "=", "#", "(", ")", "1", "2", "3", "4", "[nH]"]


@pytest.fixture(scope="module")
def kekule_tok():
    return KekuleSmilesTokenizer(vocab=SMILES_VOCAB)


@pytest.fixture(scope="module")
def aromatic_tok():
    return SmilesTokenizer(vocab=SMILES_VOCAB)


@pytest.fixture(scope="module")
def transformer():
    import molgen

    return molgen.load("moses-transformer")


@pytest.fixture(scope="module")
def diffusion():
    """The shipped SELFIES MDLM: canvas infilling (the shipped moses-diffusion samples left to right and
    completes templates as the transformer does)."""
    import molgen

    return molgen.load("moses-mdlm-selfies")


# --- parsing and errors ------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"scaffold": "c1cc"}, "invalid fragment SMILES"),
    ({"scaffold": "CC.CC"}, "not one connected fragment"),
    ({"linker": "*c1ccccc1"}, "exactly two fragments"),
    ({"linker": "*c1ccccc1.*C.*N"}, "exactly two fragments"),
    ({"linker": "c1ccccc1.*C1CC1"}, "exactly one attachment point"),
    ({"extend": "c1ccccc1"}, "exactly one attachment point"),
    ({"extend": "*c1ccc(*)cc1"}, "exactly one attachment point"),
    ({"scaffold": "c1ccccc1", "extend": "*C"}, "exactly one of scaffold / linker / extend"),
    ({}, "exactly one of scaffold / linker / extend"),
    ({"scaffold": "*(C)C"}, "bonded to exactly one atom"),
])
def test_bad_constraints_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_constraint(**kwargs)
    assert "\n" not in str(e.value)


def test_attachment_points_in_any_spelling_and_the_match_ignores_them():
    for text in ("*c1ccccc1", "[*]c1ccccc1", "[1*]c1ccccc1", "[*:3]c1ccccc1"):
        c = parse_constraint(extend=text)
        assert c.fragments[0].n_attachments == 1
        assert contains_fragments(["Cc1ccccc1", "C1CCCCC1", None, "not a smiles"], c).tolist() == [
            True, False, False, False]
    # an aromatic N that held the `*` (no kekulé form alone) still matches its substituted forms
    c = parse_constraint(linker="*n1nnc2ccccc21.*Cc1ccco1")
    assert contains_fragments(["Clc1ccc(-n2nnc3ccccc32)c(Cc2ccco2)c1", "c1ccc2[nH]nnc2c1"], c).tolist() == [True, False]
    # a linker's two fragments must sit on disjoint atoms
    c = parse_constraint(linker="*c1ccccc1.*c1ccccc1")
    assert contains_fragments(["c1ccc(Cc2ccccc2)cc1", "Cc1ccccc1"], c).tolist() == [True, False]


# --- templates ---------------------------------------------------------------------------------
def test_kekule_templates_spans_and_attachment_points(kekule_tok):
    # `*` as a branch: `(` + a span the model ends with its own `)`; `*` at the end: a tail
    assert str(build_template(kekule_tok, scaffold="*c1ccc(*)cc1")) == "C1=CC(<branch>)=CC=C1<tail>"
    # no `*`: an optional branch after each H-bearing atom, an optional tail; Kekulé bonds written out
    t = str(build_template(kekule_tok, scaffold="c1ccccc1"))
    assert t == "C1<(branch)?>=C<(branch)?>C<(branch)?>=C<(branch)?>C<(branch)?>=C1<tail?>"
    # extension: the motif written to end at its attachment atom, then one tail
    assert str(build_template(kekule_tok, extend="*C(=O)N1CCOCC1")).endswith(")<tail>")
    # linker: FRAG1 ends at its attachment atom, the linker, FRAG2 written from its attachment atom
    t = str(build_template(kekule_tok, linker="*C1CCNCC1.*c1ccncc1"))
    assert t == "C1CNCCC1<linker>C1=CC=NC=C1"


def test_aromatic_templates_keep_aromatic_tokens_and_skip_bracket_h_atoms(aromatic_tok):
    t = str(build_template(aromatic_tok, scaffold="c1ccc2[nH]ccc2c1"))
    assert "c" in t and "=" not in t
    assert "[nH]<(branch)?>" not in t  # `[nH](C)` would be a 4-valent N: no optional branch there


def test_fragment_outside_the_vocabulary_is_refused(kekule_tok):
    with pytest.raises(ConfigError, match=r"does not tokenize with the model's vocabulary: token\(s\) 'Br'"):
        build_template(kekule_tok, scaffold="Brc1ccccc1")


def test_selfies_spans_inside_a_ring_closure_are_found():
    toks = ["[C]", "[=C]", "[C]", "[Branch1]", "[C]", "[77CH3]", "[=C]", "[C]", "[=C]", "[Ring1]", "[#Branch1]",
            "[77CH3]"]
    ph = ["77C" in t for t in toks]
    # the branch run (atom 3) lies inside the ring closed at the end; the tail (atom 7) does not
    assert selfies_unsafe_runs(toks, ph) == [3]


# --- the state machine -------------------------------------------------------------------------
def _walk(tokenizer, items, n_rows=64, max_len=40, seed=0, **row_kw):
    """Draw token strings through TemplateConstraint with random (model-free) logits."""
    vocab, masks = TokenClasses(tokenizer), AllowedMasks(TokenClasses(tokenizer))
    rows = [RowState(items, vocab, max_len, {"link": 3, "head": 2}, **row_kw) for _ in range(n_rows)]
    con = TemplateConstraint(rows, masks)
    g = torch.Generator().manual_seed(seed)
    prev = torch.full((n_rows,), tokenizer.bos_id)
    done = torch.zeros(n_rows, dtype=torch.bool)
    out = []
    for t in range(max_len + 1):
        logits = torch.randn(n_rows, tokenizer.vocab_size, generator=g)
        logits[:, [tokenizer.pad_id, tokenizer.bos_id, tokenizer.unk_id]] = float("-inf")
        if t >= max_len:
            logits[:, :] = float("-inf")
            logits[:, tokenizer.eos_id] = 0.0
        lp = con(t, prev, torch.log_softmax(logits, -1))
        assert torch.isfinite(lp).any(-1).all()  # never a row with nothing allowed
        nxt = torch.multinomial(lp.exp(), 1, generator=g).squeeze(-1)
        nxt = torch.where(done, torch.full_like(nxt, tokenizer.pad_id), nxt)
        out.append(nxt)
        done |= nxt == tokenizer.eos_id
        prev = nxt
        if bool(done.all()):
            break
    for row, tok in zip(rows, prev.tolist()):  # the last draw, as the sampler's next step would pass it
        row.consume(tok)
    return [tokenizer.decode(r) for r in torch.stack(out, 1).tolist()], rows


@pytest.mark.parametrize("spec", [{"scaffold": "*c1ccc(*)cc1"}, {"scaffold": "c1ccccc1"},
                                  {"linker": "*C1CCNCC1.*c1ccncc1"}, {"extend": "*C(=O)N1CCOCC1"}])
def test_random_walks_keep_the_template_and_balanced_spans(kekule_tok, spec):
    t = build_template(kekule_tok, **spec)
    strings, rows = _walk(kekule_tok, t.items)
    forced = [kekule_tok.itos[it[1]] for it in t.items if it[0] == "tok"]
    for s, row in zip(strings, rows):
        assert row.done and not row.broken and row.span is None and row.items[row.pos][0] == "end"
        toks = SMILES_REGEX.findall(s)
        assert len(toks) <= 40
        it = iter(toks)
        assert all(any(x == f for x in it) for f in forced)  # the forced tokens, in order
        assert s.count("(") == s.count(")")
        for label in "1234":  # every ring label closed
            assert s.count(label) % 2 == 0, s


def test_a_span_never_uses_a_ring_label_open_in_the_template(kekule_tok):
    t = build_template(kekule_tok, scaffold="*c1ccc(*)cc1")  # the branch sits inside ring 1
    strings, _ = _walk(kekule_tok, t.items, n_rows=128, seed=1)
    for s in strings:
        branch = s[len("C1=CC("):s.index(")=CC=C1")]
        assert "1" not in branch, s


def test_head_spans_hand_over_to_the_scaffold(kekule_tok):
    b = TemplateBuilder(parse_constraint(scaffold="c1ccccc1"), kekule_tok)
    t = b.template(sites=((0, 1),), head=0)
    assert str(t).startswith("<head>C1")
    for handover in ("force", "match"):
        strings, rows = _walk(kekule_tok, t.items, seed=2, handover={"head": handover})
        assert all(r.done and not r.broken for r in rows)
        assert all("C1" in s for s in strings)


# --- sampling with the shipped models ----------------------------------------------------------
def test_transformer_rows_contain_the_scaffold_invalid_kept_and_scored(transformer):
    res = transformer.sample(60, seed=3, scaffold="c1ccccc1")
    info = res.info
    assert len(res) == 60 and info["constraint"] == "scaffold" and info["fragments"] == ["c1ccccc1"]
    valid = res.valid
    assert valid.mean() > 0.6
    assert info["contains_fragments"][valid].all()  # every valid row contains benzene
    assert not info["contains_fragments"][~valid].any()
    assert all(s for s in res.smiles)  # invalid rows are kept with their string
    assert info["summary"]["n"] == 60 and info["summary"]["valid"] == int(valid.sum())
    # the likelihood: the model's exact log p of each valid canonical output, NaN for the invalid ones
    assert str(res.likelihood).startswith("exact")
    ll = res.log_likelihood
    assert np.isnan(ll[~valid]).all()
    idx = np.flatnonzero(valid)[:5]
    ref = transformer.score([res.canonical[i] for i in idx])["log_likelihood"].to_numpy()
    np.testing.assert_allclose(ll[idx], ref, rtol=1e-5)
    # a valid output the model cannot score (canonical string over max_len) has no number and is counted
    assert info["summary"]["mean_nll"] == pytest.approx(-np.nanmean(ll[valid]))
    assert info["summary"]["unscored_valid"] == int(np.isnan(ll[valid]).sum())
    df = res.to_frame()
    for col in ("constraint", "fragments", "contains_fragments", "constraint_status", "attempts", "log_likelihood"):
        assert col in df.columns
    assert df["contains_fragments"].tolist() == info["contains_fragments"].tolist()


@pytest.mark.parametrize("spec", [{"linker": "*C1CCNCC1.*c1ccncc1"}, {"extend": "*C(=O)N1CCOCC1"},
                                  {"scaffold": "*c1ccc(*)cc1"}])
def test_transformer_linker_extend_and_attachment_points(transformer, spec):
    res = transformer.sample(24, seed=0, **spec)
    assert res.valid.mean() > 0.5
    assert res.info["contains_fragments"][res.valid].all()


def test_valid_rows_without_the_fragment_are_redrawn_then_marked_and_counted_invalid(transformer, monkeypatch):
    calls = []

    def fake(self, rows, *, seed, attempt, temperature):  # row 0: benzene at the 2nd draw; others never
        calls.append((list(rows), attempt))
        return ["c1ccccc1C" if (r == 0 and attempt == 1) else ("C1CC" if r == 2 else "CCO") for r in rows]

    monkeypatch.setattr(TemplateCompletion, "sample", fake)
    res = constrained_sample(transformer, 3, seed=0, scaffold="c1ccccc1", attempts=3)
    assert calls == [([0, 1, 2], 0), ([0, 1], 1), ([1], 2)]  # invalid row 2 is never redrawn
    assert res.info["attempts"].tolist() == [2, 3, 1]
    assert res.info["constraint_status"].tolist() == ["ok", "missing_fragments", "invalid"]
    assert res.valid.tolist() == [True, False, False] and res.smiles[1] == "CCO"
    s = res.info["summary"]
    assert (s["missing_fragments"], s["redrawn_rows"], s["contains_share_of_valid"]) == (1, 2, 1.0)
    assert res.to_frame()["constraint_status"].tolist() == ["ok", "missing_fragments", "invalid"]


def test_rows_depend_only_on_seed_and_row(transformer):
    a = constrained_sample(transformer, 12, seed=7, scaffold="c1ccc2[nH]ccc2c1", batch_size=5, score=False)
    b = constrained_sample(transformer, 5, seed=7, scaffold="c1ccc2[nH]ccc2c1", score=False)
    assert a.smiles[:5] == b.smiles
    c = constrained_sample(transformer, 12, seed=8, scaffold="c1ccc2[nH]ccc2c1", score=False)
    assert a.smiles != c.smiles


def test_diffusion_infills_and_keeps_rows(diffusion):
    res = diffusion.sample(10, seed=0, scaffold="c1ccccc1")
    assert len(res) == 10 and res.info["strategy"] == "infilling"
    assert res.info["contains_fragments"][res.valid].all()
    assert str(res.likelihood).startswith("elbo")
    assert np.isfinite(res.log_likelihood[res.valid]).all()
    b = constrained_sample(diffusion, 4, seed=0, scaffold="c1ccccc1", score=False)
    assert b.smiles == res.smiles[:4]


@pytest.mark.parametrize("block_size", [None, 4])
def test_infilling_keeps_the_fixed_tokens_for_mdlm_and_block_diffusion(kekule_tok, block_size):
    from molgen.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.get("diffusion").build({"backbone.d_model": 32, "backbone.n_layers": 2, "backbone.n_heads": 2,
                                           "backbone.dropout": 0.0, "max_len": 30, "block_size": block_size},
                                          representation=kekule_tok).eval()
    res = constrained_sample(model, 6, seed=0, scaffold="*c1ccc(*)cc1", attempts=1, score=False)
    assert len(res) == 6 and res.info["strategy"] == "infilling"
    for s in res.smiles:  # an untrained model: the strings are junk around the fixed template tokens
        assert s.startswith("C1=CC(") and ")=CC=C1" in s, s


def test_other_families_refuse_naming_those_that_can():
    for name in ("vae", "flow", "gan"):
        with pytest.raises(CapabilityError, match=r"Families that can: transformer .*diffusion"):
            strategy_for(SimpleNamespace(name=name, writes_in_order=False), parse_constraint(scaffold="c1ccccc1"))


def test_the_vae_refuses_through_sample():
    import molgen

    with pytest.raises(CapabilityError, match=r"vae.*cannot generate under a fragment constraint"):
        molgen.load("moses-vae").sample(2, scaffold="c1ccccc1")


def test_unknown_keywords_list_the_accepted(transformer):
    with pytest.raises(OptionError, match=r"accepted: .*scaffold.*linker.*extend"):
        constrained_sample(transformer, 2, scafold="c1ccccc1")
    with pytest.raises(ConfigError, match="cannot be combined"):
        transformer.sample(2, scaffold="c1ccccc1", condition={"qed": 0.9})


def test_selfies_tokenizer_templates_have_fixed_length_spans():
    tok = SelfiesTokenizer(vocab=["[C]", "[=C]", "[Ring1]", "[Ring2]", "[Branch1]", "[=Branch1]", "[#Branch1]",
                                  "[Branch2]", "[=Branch2]", "[#Branch2]", "[N]", "[=N]", "[O]", "[=O]", "[#C]",
                                  "[S]", "[P]"])
    t = build_template(tok, scaffold="*c1ccc(*)cc1")
    assert "<1>" in str(t) and str(t).endswith("<tail>")


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_writes_the_columns_and_prints_the_summary(tmp_path, capsys):
    import pandas as pd

    from molgen.cli.main import main

    out = tmp_path / "s.csv"
    assert main(["sample", "--model", "moses-transformer", "--scaffold", "c1ccccc1", "-n", "16", "-o", str(out),
                 "--seed", "0"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 16 and set(df["constraint"]) == {"scaffold"}
    assert df.loc[df["valid"] == 1, "contains_fragments"].astype(bool).all()
    err = capsys.readouterr().err
    assert "contain the fragment(s)" in err and "mean NLL" in err and "validity" in err


@pytest.mark.parametrize("argv, message", [
    (["--scaffold", "c1cc"], "invalid fragment SMILES"),
    (["--linker", "c1ccccc1"], "exactly two fragments"),
    (["--scaffold", "c1ccccc1", "--extend", "*C"], "give one of --scaffold / --linker / --extend"),
    (["--scaffold", "c1ccccc1", "--condition", "qed=0.9"], None),  # an unconditional model refuses first
])
def test_cli_errors_are_one_line_before_the_model_loads(tmp_path, capsys, argv, message):
    from molgen.cli.main import main

    rc = main(["sample", "--model", "moses-transformer", "-n", "2", "-o", str(tmp_path / "x.csv"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    if message:
        assert message in err


# --- acceptance (shipped models, 200 samples each) ---------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["moses-transformer", "moses-diffusion"])
def test_acceptance_benzene_decoration(name, tmp_path, capsys):
    import pandas as pd

    from molgen.cli.main import main

    out = tmp_path / "benzene.csv"
    assert main(["sample", "--model", name, "--scaffold", "c1ccccc1", "-n", "200", "-o", str(out), "--seed", "0"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 200
    valid = df["valid"].astype(bool)
    assert df.loc[valid, "contains_fragments"].astype(bool).all()  # valid rows all contain benzene
    assert valid.mean() >= 0.85
    assert "mean NLL" in capsys.readouterr().err
