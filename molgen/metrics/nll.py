"""The test-set NLL of a model, labelled and with its denominators.

``summarize_scores`` turns the rows of ``model.score(smiles)`` into one :class:`NLLSummary`: the mean
negative log-likelihood over the rows that were scored, the label those rows carry (kind, object, unit:
copied, never re-derived), and a count of every row that was not scored, by status. Rows that could not
be scored (too long, out-of-vocabulary tokens, invalid SMILES, errors) are counted, never silently
dropped: the mean is over scored molecules only, and the report says so next to the number.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from molgen.likelihood import LikelihoodLabel

LABEL_COLUMNS = {'kind': 'likelihood_kind', 'object': 'likelihood_object', 'unit': 'likelihood_unit'}


@dataclass
class NLLSummary:
    """Mean NLL over the scored rows, its label and the unscored rows by status."""

    value: float                      # mean -log p over scored rows (NaN when none was scored)
    label: dict[str, str] | None      # {'kind', 'object', 'unit'} from the scored rows
    n: int                            # rows given to the model
    n_scored: int
    unscored: dict[str, int] = field(default_factory=dict)     # status group -> count (oov_token, too_long, ...)
    oov_tokens: dict[str, int] = field(default_factory=dict)   # token -> rows it made unscorable

    @property
    def n_unscored(self) -> int:
        return self.n - self.n_scored

    @property
    def label_text(self) -> str:
        """``exact log p(canonical-smiles), nats/molecule`` (the label's own string form)."""
        if self.label is None:
            return 'unlabelled likelihood'
        if set(self.label) >= set(LABEL_COLUMNS):
            return str(LikelihoodLabel(**{k: self.label[k] for k in LABEL_COLUMNS}))
        return f"{self.label.get('kind', '?')} log p (object and unit not stated)"

    def counts_text(self) -> str:
        """``1000 scored, 3 unscored: too_long 2, oov_token 1``."""
        text = f'{self.n_scored} scored, {self.n_unscored} unscored'
        if self.unscored:
            text += ': ' + ', '.join(f'{k} {v}' for k, v in self.unscored.items())
        return text

    def note(self) -> str:
        return f'{self.label_text}; {self.counts_text()}; mean over scored molecules only'

    def meta(self) -> dict[str, Any]:
        return {'n': self.n, 'n_scored': self.n_scored, 'n_unscored': self.n_unscored,
                'unscored': dict(self.unscored), 'oov_tokens': dict(self.oov_tokens),
                'mean_over': 'scored molecules only'}


def status_group(status: str) -> str:
    """``oov_token:Br,Cl`` -> ``oov_token``; other statuses as they are."""
    return str(status).split(':', 1)[0]


def summarize_scores(df: Any, model: Any = None) -> NLLSummary:
    """One :class:`NLLSummary` from a ``model.score`` table.

    The label comes from the scored rows' ``likelihood_kind / _object / _unit`` columns; a table without
    object / unit columns takes them from ``model.likelihood_label()``. Rows whose labels differ are an
    error (one number, one label). A row with status ``ok`` but a NaN log-likelihood counts as unscored
    (``nan_log_likelihood``).
    """
    status = [str(s) for s in df['status']]
    ll = [float(x) for x in df['log_likelihood']]
    ok = [i for i, (s, v) in enumerate(zip(status, ll)) if s == 'ok' and not math.isnan(v)]
    ok_set = set(ok)
    unscored: Counter = Counter()
    oov: Counter = Counter()
    for i, s in enumerate(status):
        if i in ok_set:
            continue
        group = 'nan_log_likelihood' if s == 'ok' else status_group(s)
        unscored[group] += 1
        if group == 'oov_token' and ':' in s:
            oov.update(t for t in s.split(':', 1)[1].split(',') if t)
    label = _label(df, ok, model)
    value = -sum(ll[i] for i in ok) / len(ok) if ok else float('nan')
    return NLLSummary(value=value, label=label, n=len(status), n_scored=len(ok),
                      unscored=dict(unscored.most_common()), oov_tokens=dict(oov.most_common()))


def _label(df: Any, rows: list[int], model: Any) -> dict[str, str] | None:
    """The scored rows' label; without scored rows (or label columns), the model's own."""
    fallback = model_label(model) or {}
    label: dict[str, str] = {}
    for key, col in LABEL_COLUMNS.items():
        if rows and col in df.columns:
            values = {str(df[col].iloc[i]) for i in rows}
            if len(values) > 1:
                raise ValueError(f'the scored rows carry different likelihood labels ({col}: {sorted(values)}); '
                                 'one NLL needs one label')
            label[key] = values.pop()
        elif key in fallback:
            label[key] = fallback[key]
    return label or None


def model_label(model: Any) -> dict[str, str] | None:
    """``model.likelihood_label()`` as a dict (None: the model has no likelihood)."""
    fn = getattr(model, 'likelihood_label', None)
    lab = fn() if callable(fn) else None
    if lab is None:
        return None
    if hasattr(lab, 'to_dict'):
        return dict(lab.to_dict())
    if isinstance(lab, dict):
        return {k: str(v) for k, v in lab.items()}
    return {'kind': str(lab)}  # a bare kind string (older models)
