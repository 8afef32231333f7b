"""Fragment-constrained generation: scaffold decoration, linker design, motif extension.

    model.sample(100, scaffold="c1ccc2[nH]ccc2c1")            # decorate: at the `*`s given, else at any H
    model.sample(100, linker="*C1CCNCC1.*c1ccncc1")           # connect two fragments (one `*` each)
    model.sample(100, extend="*C(=O)N1CCOCC1")                # grow from one attachment point

**The fragment is written, not hoped for.** A constraint (:mod:`~molgen.fragments.constraints`)
becomes a template molecule (:mod:`~molgen.fragments.placeholders`) written by RDKit in the model's
own representation (:mod:`~molgen.fragments.writers`) and compiled into fixed tokens and free spans
(:mod:`~molgen.fragments.templates`). An autoregressive family completes it token by token
(:mod:`~molgen.fragments.completion`), an infilling family fills its masked spans
(:mod:`~molgen.fragments.infilling`); :func:`constrained_sample` (:mod:`~molgen.fragments.sampling`)
checks, redraws and scores every row.
"""

from molgen.fragments.completion import HEAD_MAX_ATOMS, TemplateCompletion
from molgen.fragments.constraints import (
    CONSTRAINTS,
    Constraint,
    Fragment,
    contains_fragments,
    parse_constraint,
    parse_fragment,
)
from molgen.fragments.infilling import Infilling
from molgen.fragments.sampling import (
    DEFAULT_ATTEMPTS,
    constrained_sample,
    score_outputs,
    strategy_for,
    summary_line,
)
from molgen.fragments.templates import Template, TemplateBuilder, build_template

__all__ = ["CONSTRAINTS", "DEFAULT_ATTEMPTS", "HEAD_MAX_ATOMS", "Constraint", "Fragment", "Infilling", "Template",
           "TemplateBuilder", "TemplateCompletion", "build_template", "constrained_sample", "contains_fragments",
           "parse_constraint", "parse_fragment", "score_outputs", "strategy_for", "summary_line"]
