"""Score a compound library by likelihood: one output row per input row, never a crash on one row.

Columns: ``input, canonical, standardized, status, log_likelihood, nll_per_token, n_tokens,
likelihood_kind, likelihood_object, likelihood_unit, note``. ``status`` is ``ok``, ``invalid_smiles``
(RDKit cannot read it; ``canonical`` empty), ``oov_token:<tok>[,<tok>...]`` (every unknown token), ``too_long``,
``unrepresentable`` (a valid molecule the representation cannot write, e.g. a dative bond in SELFIES;
``canonical`` kept) or ``error`` (reason in ``note``). ``note`` says why in words: the elements the
model never saw, the fragments stripped, the token count over ``max_len``. ``log_likelihood`` is log p
(or the labelled lower bound) in nats per molecule, NaN unless ``ok``; ``nll_per_token`` is a
secondary diagnostic (not comparable across representations). The label columns come from
``model.likelihood_label(kind)``, the same object as everywhere else; the DataFrame also carries it
in ``df.attrs["likelihood"]``. Files keep their ID column (``keep_cols``), placed first.

By default the scored object is the input molecule under the model's policy (strict). On request
(``strip_stereo``, ``neutralize``, ``strip_isotopes``, or ``standardize="like-training"``: what the
model's vocabulary cannot write) the molecule is standardised first; ``standardized`` says per row
what that changed (``""``, ``"stereo"``, ``"stereo,charge"``, ...: the names of
:data:`molgen.chem.STANDARDIZATIONS`, in that order). Tokens in statuses and notes are spelt as
SMILES atoms whatever the representation (``[O-]``, not SELFIES ``[O-1]``), and an ``oov_token`` note
names the option that would score the row.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from molgen.chem import STANDARDIZATIONS, Status, restandardize, standardize, to_mol
from molgen.conditioning import condition_text
from molgen.data.io import TABLE_SUFFIXES, iter_table_batches, write_frames
from molgen.errors import ConfigError, OOVError, TokenizeError, TooLongError, check_choice, row_status, strict
from molgen.progress import progress_bar
from molgen.representation import Representation, token_writes

log = logging.getLogger(__name__)
COLUMNS = ["input", "canonical", "standardized", "status", "log_likelihood", "nll_per_token", "n_tokens",
           "likelihood_kind", "likelihood_object", "likelihood_unit", "note"]
#: the ``score`` option of each standardisation (the ``standardized`` column's names)
OPTIONS = {"stereo": "strip_stereo", "charge": "neutralize", "isotope": "strip_isotopes"}
#: ``standardize=`` modes (None: only the options given)
STANDARDIZE_MODES = ("like-training",)


def known_elements(representation: Representation) -> frozenset[str]:
    """Elements written by some unit of the representation's vocabulary (what the model has seen);
    empty for a representation that makes no such claim."""
    return representation.known_elements() or frozenset()


def _unseen_elements(model, canonical: str) -> list[str]:
    rep: Representation | None = model.representation
    mol = to_mol(canonical)
    known = rep.known_elements() if rep is not None else None
    if known is None or mol is None:
        return []
    return sorted({a.GetSymbol() for a in mol.GetAtoms()} - known - {"*"})


def like_training(model) -> tuple[str, ...]:
    """The standardisations ``standardize="like-training"`` applies: those the model's representation
    vocabulary cannot write (no chiral / directional-bond token: stereo; no charged atom: charge; no
    isotope: isotope; :meth:`~molgen.representation.Representation.expressible`).

    Derived from the vocabulary, which every saved model with a representation carries (the training data
    may not ship with it); a shipped MOSES model gets all three."""
    rep: Representation | None = model.representation
    if rep is None:
        raise ConfigError(f'standardize="like-training" reads a tokenizer vocabulary; model {model.name!r} '
                          f"has none: pass strip_stereo / neutralize / strip_isotopes instead")
    can = rep.expressible()
    return tuple(c for c in STANDARDIZATIONS if c not in can)


def standardizations(model, *, strip_stereo: bool = False, neutralize: bool = False,
                     strip_isotopes: bool = False, standardize: str | None = None) -> tuple[str, ...]:
    """The standardisations the ``score`` options ask for (validated), in :data:`STANDARDIZATIONS` order;
    ``standardize="like-training"`` adds :func:`like_training`'s."""
    given = {"stereo": strip_stereo, "charge": neutralize, "isotope": strip_isotopes}
    for change, value in given.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{OPTIONS[change]} must be True or False, got {value!r}")
    check_choice("standardize", standardize, [None, *STANDARDIZE_MODES])
    asked = {c for c, v in given.items() if v}
    if standardize == "like-training":
        asked.update(like_training(model))
    return tuple(c for c in STANDARDIZATIONS if c in asked)


def _spell(model, tokens: Sequence[str]) -> list[str]:
    """OOV tokens spelt as SMILES atoms (``[O-1]`` -> ``[O-]``), each once, in order."""
    rep: Representation | None = model.representation
    return list(dict.fromkeys(rep.smiles_spelling(t) if rep is not None else t for t in tokens))


def _suggestion(model, canonical: str, tokens: Sequence[str], applied: Sequence[str]) -> str:
    """``"--strip-stereo (strip_stereo=True) would score it"`` when the options not applied yet that bear
    on the unknown ``tokens`` would score the row (checked by featurizing again), else ``""``."""
    bearing = set().union(*(token_writes(t) for t in tokens))
    candidates = [c for c in STANDARDIZATIONS if c in bearing and c not in applied]
    for k in range(1, len(candidates) + 1):
        for combo in itertools.combinations(candidates, k):
            new, done = restandardize(canonical, combo, model.policy)
            if new is None or len(done) != len(combo):
                continue  # an option that changes nothing is never suggested
            try:
                model.featurize(new)
            except Exception:
                continue
            flags = " ".join("--" + OPTIONS[c].replace("_", "-") for c in combo)
            return f"{flags} ({', '.join(f'{OPTIONS[c]}=True' for c in combo)}) would score it"
    return ""


def _fragments_note(smiles: str) -> str:
    n = smiles.count(".") + 1
    return f"largest of {n} fragments kept" if n > 1 else ""


def as_smiles_list(smiles: Any, what: str = "smiles") -> list[str | None]:
    """A list of SMILES from a list / tuple / Series / array; a bare string is an error, never characters."""
    if isinstance(smiles, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of SMILES, not a single string; for one molecule pass "
                        f"[{smiles!r}]")
    if isinstance(smiles, pd.DataFrame):
        raise TypeError(f"{what} must be a sequence of SMILES; for a DataFrame pass its SMILES column")
    return list(smiles)


class PreparedRow(NamedTuple):
    """One input row made ready for scoring (:func:`prepare_row`)."""

    canonical: str | None
    status: str
    item: Any  #: the model's featurized input (None unless ``status == "ok"``)
    n_tokens: int  #: the ``n_tokens`` column (:meth:`~molgen.representation.Representation.scored_tokens`)
    note: str
    changed: tuple[str, ...]  #: the standardisations that changed the molecule
    length: int = 0  #: the model's ``item_length`` of ``item``: rows of similar size are batched together


def prepare_row(model, smiles: str | None, changes: Sequence[str] = ()) -> PreparedRow:
    """(canonical, status, item, n_tokens, note, changed, length) for one input row; status and canonical
    agree: ``invalid_smiles`` has no canonical, every other status has one. ``changes``: the
    standardisations to apply (:func:`standardizations`); ``changed``: those that changed the molecule.
    Also what :func:`molgen.finetune` reads to say which rows a model can represent."""
    canonical, status = standardize(smiles, model.policy)
    if status is not Status.OK:
        if status is Status.TOO_LONG:
            note = "longer than the policy's character limit"
        elif not isinstance(smiles, str) or not smiles.strip():
            note = "empty"
        else:
            note = "RDKit cannot read it"
        return PreparedRow(None, status.value, None, 0, note, ())
    note = _fragments_note(smiles) if isinstance(smiles, str) else ""
    changed: tuple[str, ...] = ()
    if changes:
        new, changed = restandardize(canonical, changes, model.policy)
        if new is None:
            return PreparedRow(canonical, "error", None, 0,
                               _join(note, f"standardizing ({', '.join(changes)}) failed"), ())
        canonical = new
    try:
        feats = model.featurize(canonical)
    except (KeyError, ValueError) as e:  # OOVError / TooLongError / TokenizeError, or an exotic failure
        if isinstance(e, TokenizeError):  # valid chemistry the representation cannot write
            return PreparedRow(canonical, "unrepresentable", None, 0, _join(note, str(e)), changed)
        if isinstance(e, OOVError):
            spelled = _spell(model, e.tokens)
            unseen = _unseen_elements(model, canonical)
            why = f"token(s) {', '.join(spelled)} not in the vocabulary"
            if unseen:
                why = f"element(s) {', '.join(unseen)} never seen in training; " + why
            hint = _suggestion(model, canonical, e.tokens, changes)
            return PreparedRow(canonical, row_status(OOVError(spelled)), None, 0, _join(note, why, hint), changed)
        status = row_status(e)
        if isinstance(e, TooLongError):
            return PreparedRow(canonical, status, None, 0,
                               _join(note, f"{e.n_tokens} tokens > max_len {e.max_len}"), changed)
        log.warning("featurize failed for %r: %s", smiles, e)
        return PreparedRow(canonical, status, None, 0, _join(note, f"{type(e).__name__}: {e}"), changed)
    except Exception as e:  # featurizer bug on exotic input: keep the row, say error
        log.warning("featurize failed for %r: %s", smiles, e)
        return PreparedRow(canonical, "error", None, 0, _join(note, f"{type(e).__name__}: {e}"), changed)
    length = int(model.item_length(feats))
    rep: Representation | None = model.representation
    n_tok = rep.scored_tokens(length) if rep is not None else 0
    return PreparedRow(canonical, "ok", feats, n_tok, note, changed, length)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


@torch.no_grad()
def _score_batch(model, feats: list[Any], kind: str | None, condition: dict[str, float] | None = None) -> np.ndarray:
    batch = model.collate(feats)
    if condition is not None:
        batch.update(model.condition_space.batch(condition, len(feats)))
    batch = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    return model.log_likelihood(batch, kind=kind).double().cpu().numpy()


@strict
def score_smiles(model, smiles: Sequence[str | None], *, batch_size: int = 256, progress: bool = False,
                 kind: str | None = None, condition: dict[str, float] | None = None, strip_stereo: bool = False,
                 neutralize: bool = False, strip_isotopes: bool = False,
                 standardize: str | None = None) -> pd.DataFrame:
    """Row-aligned likelihood table for ``smiles`` (see module docstring); a Series keeps its index.
    With ``condition`` (conditional models) the numbers are log p(x | c), said in a ``condition`` column.
    ``strip_stereo`` / ``neutralize`` / ``strip_isotopes`` / ``standardize="like-training"``: standardise
    each molecule first (:func:`standardizations`); the ``standardized`` column says what changed."""
    model.require("log_likelihood")
    label = model.likelihood_label(kind)  # validates kind before any work
    changes = standardizations(model, strip_stereo=strip_stereo, neutralize=neutralize,
                               strip_isotopes=strip_isotopes, standardize=standardize)
    if condition is not None:
        # a score is log p(x | c) at any c (no samples drawn): far-out targets warn, never refuse
        condition, _ = model.check_condition(condition, None, extrapolate=True)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    index = smiles.index if isinstance(smiles, pd.Series) else None
    smiles = as_smiles_list(smiles)
    was_training = model.training
    model.eval()
    rows = [prepare_row(model, s, changes) for s in smiles]
    ll = np.full(len(rows), np.nan)
    ok = [i for i, r in enumerate(rows) if r.status == "ok"]
    # Sort by size so batches carry little padding; results go back to their rows.
    ok.sort(key=lambda i: rows[i].length)
    status = [r.status for r in rows]
    notes = [r.note for r in rows]
    it = range(0, len(ok), batch_size)
    if progress:
        it = progress_bar(it, desc="scoring", unit="batch")
    try:
        for start in it:
            idx = ok[start:start + batch_size]
            try:
                ll[idx] = _score_batch(model, [rows[i].item for i in idx], kind, condition)
            except Exception as e:  # a failing batch: retry row by row so one row cannot sink many
                log.warning("batch scoring failed (%s); retrying row by row", e)
                for i in idx:
                    try:
                        ll[i] = _score_batch(model, [rows[i].item], kind, condition)[0]
                    except Exception as e2:
                        log.warning("scoring failed for %r: %s", smiles[i], e2)
                        status[i] = "error"
                        notes[i] = _join(notes[i], f"{type(e2).__name__}: {e2}")
    finally:
        model.train(was_training)
    for i in ok:
        if status[i] == "ok" and not math.isfinite(ll[i]):
            status[i] = "error"  # NaN / -inf likelihood: say so instead of writing a number
            notes[i] = _join(notes[i], f"non-finite likelihood {ll[i]}")
            ll[i] = np.nan
    n_tok = np.array([r.n_tokens if s == "ok" else 0 for r, s in zip(rows, status)], dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_tok = np.where(n_tok > 0, -ll / np.maximum(n_tok, 1), np.nan)
    df = pd.DataFrame({
        "input": smiles, "canonical": [r.canonical for r in rows], "standardized": [",".join(r.changed) for r in rows],
        "status": status,
        "log_likelihood": ll, "nll_per_token": per_tok, "n_tokens": n_tok, "likelihood_kind": label.kind,
        "likelihood_object": label.object, "likelihood_unit": label.unit, "note": notes,
    }, columns=COLUMNS, index=index)
    df.attrs["likelihood"] = label.to_dict()
    df.attrs["standardize"] = list(changes)  # what was asked; the column says what each row needed
    if condition is not None:
        df["condition"] = condition_text(condition)
        df.attrs["condition"] = dict(condition)
    return df


def with_kept_columns(scores: pd.DataFrame, extra: pd.DataFrame | None) -> pd.DataFrame:
    """The input's carried columns first, then the score columns (a clash gets an ``input_`` prefix)."""
    if extra is None or extra.shape[1] == 0:
        return scores
    extra = extra.rename(columns={c: f"input_{c}" for c in extra.columns if c in scores.columns})
    extra.index = scores.index
    out = pd.concat([extra, scores], axis=1)
    out.attrs = scores.attrs
    return out


@strict
def iter_score_chunks(model, source: str | Path | Sequence[str | None], *, smiles_col: str | None = None,
                      chunk_size: int = 10_000, batch_size: int = 256, kind: str | None = None,
                      condition: dict[str, float] | None = None, keep_cols: str | Sequence[str] | None = None,
                      select: Any = None, strip_stereo: bool = False, neutralize: bool = False,
                      strip_isotopes: bool = False,
                      standardize: str | None = None) -> Iterator[tuple[int, pd.DataFrame | None]]:
    """(chunk index, scores) for every chunk of ``source``; chunks that ``select(index)`` rejects are
    read but not scored (``None``): how shards and resumed runs skip work without losing the order.
    The standardisation options are :func:`score_smiles`'s."""
    std = {"strip_stereo": strip_stereo, "neutralize": neutralize, "strip_isotopes": strip_isotopes,
           "standardize": standardize}
    standardizations(model, **std)  # a bad option fails before the file is read
    for i, (chunk, extra) in enumerate(iter_table_batches(source, smiles_col, batch_size=chunk_size,
                                                          keep_cols=keep_cols)):
        if select is not None and not select(i):
            yield i, None
            continue
        df = score_smiles(model, chunk, batch_size=batch_size, kind=kind, condition=condition, **std)
        yield i, with_kept_columns(df, extra)


@strict
def iter_score_file(model, source: str | Path, *, smiles_col: str | None = None, chunk_size: int = 10_000,
                    batch_size: int = 256, kind: str | None = None, condition: dict[str, float] | None = None,
                    keep_cols: str | Sequence[str] | None = None, strip_stereo: bool = False,
                    neutralize: bool = False, strip_isotopes: bool = False,
                    standardize: str | None = None) -> Iterator[pd.DataFrame]:
    """Stream a file through the model chunk by chunk (memory stays flat on huge libraries).

    ``keep_cols``: the input's columns carried into every row (None: an ID column / the ``.smi`` name;
    ``"all"``, ``"none"`` or names). The standardisation options are :func:`score_smiles`'s."""
    for _, df in iter_score_chunks(model, source, smiles_col=smiles_col, chunk_size=chunk_size,
                                   batch_size=batch_size, kind=kind, condition=condition, keep_cols=keep_cols,
                                   strip_stereo=strip_stereo, neutralize=neutralize,
                                   strip_isotopes=strip_isotopes, standardize=standardize):
        yield df


def write_scores(frames: Iterable[pd.DataFrame], out: str | Path) -> int:
    """Stream score chunks into a .csv / .tsv / .parquet table (:func:`molgen.data.io.write_frames`); returns
    the number of rows written. No chunk at all still writes the columns' header."""
    return write_frames(frames, out, accepted=TABLE_SUFFIXES, what="write a score table to", columns=COLUMNS)
