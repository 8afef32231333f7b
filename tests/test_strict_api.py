"""Every public callable rejects an unknown keyword with the list of the names it accepts.

The public API is enumerated, not listed by hand: every name in ``molgen.__all__``, the public methods
of the classes it exports (a LightningModule's own hooks left out: they are Lightning's API) and of
the objects public calls hand back (the evaluation report, the molecule grid), and the filter / export
functions. Each is called with a bogus keyword (its required arguments as None: a keyword error comes
before any work) and the error must name the keyword and every accepted one (what ``inspect.signature``
says). Callables without keyword parameters are skipped; ones that forward ``**kwargs`` are checked
through what they forward to.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

BOGUS = "bogus_option"

#: callables with no keyword parameter at all (nothing to reject)
NO_KEYWORDS = {
    "list_models", "Evaluator.prepare", "Policy.to_dict", "GenerativeModel.n_parameters", "GenerativeModel.summary",
    "SampleResult.to_frame", "EvaluationReport.to_dict", "EvaluationReport.to_frame", "EvaluationReport.nll_line",
    "EvaluationReport.to_markdown", "EvaluationReport.mode_dropping", "MoleculeGrid.to_html",
    "GenerativeModel.default_callbacks",
}
#: callables that take ``**kwargs`` and pass them on (checked by test_forwarded_keywords_are_checked)
FORWARDING = {"train", "GenerativeModel.build", "GenerativeModel.from_config", "SampleResult.filter",
              "SampleResult.draw"}
#: still Python's bare TypeError, in files another engineer owns: decorate them with molgen.errors.strict
#: (a dataclass: ``Cls.__init__ = strict(Cls.__init__)`` after the class), then delete them from here
PENDING = {
}


def _public_methods(cls: type) -> dict[str, Callable]:
    """``{"Cls.method": callable}``: the constructor and the public methods ``cls`` defines itself (for a
    LightningModule, not the hooks Lightning defines)."""
    import lightning as L

    lightning = L.LightningModule if issubclass(cls, L.LightningModule) else object
    out = {}
    for name, attr in vars(cls).items():
        if name != "__init__" and (name.startswith("_") or hasattr(lightning, name)):
            continue
        if isinstance(attr, property) or inspect.isclass(attr):
            continue
        fn = cls if name == "__init__" else getattr(cls, name)  # a constructor is called as the class
        if callable(fn):
            out[f"{cls.__name__}.{name}"] = fn
    return out


def public_callables() -> dict[str, Callable]:
    import molgen
    from molgen import filtering
    from molgen.data import io
    from molgen.drawing import MoleculeGrid
    from molgen.metrics.report import EvaluationReport

    out: dict[str, Callable] = {}
    for name in molgen.__all__:
        obj = getattr(molgen, name)
        if inspect.isclass(obj):
            out.update(_public_methods(obj))
        elif callable(obj):
            out[name] = obj
    for cls in (EvaluationReport, MoleculeGrid):  # what evaluate() / draw() hand back
        out.update(_public_methods(cls))
    out["filtering.summary"] = filtering.summary
    for name in ("read_smiles", "write_frames", "write_smiles"):
        out[f"io.{name}"] = getattr(io, name)
    return out


def _signature(label: str, fn: Callable) -> inspect.Signature:
    sig = inspect.signature(fn.__init__ if inspect.isclass(fn) else fn)
    return sig


def _params(label: str, fn: Callable) -> list[inspect.Parameter]:
    return [p for p in _signature(label, fn).parameters.values() if p.name not in ("self", "cls")]


def _accepted(label: str, fn: Callable) -> list[str]:
    return [p.name for p in _params(label, fn) if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _forwards(label: str, fn: Callable) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in _params(label, fn))


CALLABLES = public_callables()
CHECKED = sorted(k for k, fn in CALLABLES.items() if _accepted(k, fn) and not _forwards(k, fn))


def test_the_enumeration_sorts_every_public_callable():
    no_keywords = {k for k, fn in CALLABLES.items() if not _accepted(k, fn) and not _forwards(k, fn)}
    assert no_keywords == NO_KEYWORDS
    assert {k for k, fn in CALLABLES.items() if _forwards(k, fn)} == FORWARDING
    assert set(PENDING) <= set(CHECKED)
    assert {"Evaluator.__init__", "Evaluator.evaluate", "GenerativeModel.sample", "GenerativeModel.score",
            "filter_molecules", "write_molecules", "read_table", "finetune", "load", "draw",
            "EvaluationReport.to_json", "EvaluationReport.plot", "MoleculeGrid.save"} <= set(CHECKED)


def _dummies(label: str, fn: Callable) -> tuple[list[Any], dict[str, Any]]:
    """None for every required argument: the keyword check comes first, so nothing runs."""
    args, kwargs = [], {}
    params = _params(label, fn)
    if not inspect.isclass(fn) and inspect.isfunction(fn) and "." in label and "self" in _signature(
            label, fn).parameters:
        args.append(object())  # an unbound method: a stand-in self
    for p in params:
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            args.append(None)
        elif p.default is p.empty and p.kind is p.KEYWORD_ONLY:
            kwargs[p.name] = None
    return args, kwargs


@pytest.mark.parametrize("label", [pytest.param(k, marks=pytest.mark.xfail(
    strict=True, reason=f"needs molgen.errors.strict in {PENDING[k]}")) if k in PENDING else k for k in CHECKED])
def test_an_unknown_keyword_is_refused_with_the_accepted_names(label):
    fn = CALLABLES[label]
    args, kwargs = _dummies(label, fn)
    with pytest.raises(TypeError) as e:
        fn(*args, **kwargs, **{BOGUS: 1})
    msg = str(e.value)
    listed = set(re.findall(r"\w+", msg.partition("accepted")[2]))  # the names after "accepted"
    missing = [name for name in _accepted(label, fn) if name not in listed]
    assert BOGUS in msg and "accepted" in msg and not missing, f"{label}: {msg!r} does not list {missing}"


def test_the_evaluator_names_what_it_accepts():
    from molgen import Evaluator
    from molgen.errors import ConfigError

    with pytest.raises(ConfigError, match=r"referense.*accepted: reference, train, scaffold_reference"):
        Evaluator(referense="moses:test")


def test_forwarded_keywords_are_checked(tmp_path):
    import molgen
    from molgen.models.base import SampleResult

    res = SampleResult(["CCO", "C1CC"], ["CCO", None])
    with pytest.raises(TypeError, match=rf"{BOGUS}.*accepted: data, smiles_col, valid, unique, novel_against"):
        res.filter(**{BOGUS: 1})
    with pytest.raises(TypeError, match=rf"{BOGUS}.*accepted: data, smiles_col, legend, n, per_row"):
        res.draw(**{BOGUS: 1})
    # from_config(config, **nested): only the family's declared nested roles
    from molgen.models.transformer import TransformerConfig, TransformerModel

    with pytest.raises(ValueError, match=rf"holds no nested model.*{BOGUS}"):
        TransformerModel.from_config(TransformerConfig(max_len=8), **{BOGUS: 1})
    # train(**options): an option that is neither a training option nor the family's is refused with both lists
    with pytest.raises(ValueError, match=rf"{BOGUS}.*training options: .*max_steps"):
        molgen.train("transformer", data=["CCO", "CCC", "CCN", "CCCC", "CCOC", "c1ccccc1"] * 4,
                     out=tmp_path / "m", max_steps=1, progress=False, **{BOGUS: 1})
    assert not (tmp_path / "m").exists()
