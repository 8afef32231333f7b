"""``molgen finetune``: train a saved model further on a focused set (e.g. one's own actives).

Every option is declared once, in :class:`molgen.options.finetune.FinetuneOptions` (the parser and
:func:`molgen.finetune`'s signature are generated from it).
"""

from __future__ import annotations

import argparse
import json
import sys

from molgen.options import base as options
from molgen.options.finetune import POSITIONAL, FinetuneOptions
from molgen.training.finetune import finetune


def run(args: argparse.Namespace) -> int:
    given = options.options_from_namespace(FinetuneOptions, args)
    given["progress"] = not getattr(args, "quiet", False)
    positional = [given.pop(k) for k in POSITIONAL]  # --from, --data, --out
    model = finetune(*positional, **given)
    ft = model.metadata["finetune"]
    summary = {"out": args.out, "from": args.model, "model": model.name,
               "rows": ft["data"]["rows"], "status_counts": ft["data"]["status_counts"],
               "finetune_set_nll": {k: ft["finetune_set_nll"][k] for k in ("before", "after")},
               **model.metadata.get("final", {})}
    print(json.dumps(summary, indent=1))
    if ft["data"]["left_out"] and given["progress"]:
        print(f"{ft['data']['left_out']} row(s) the base model cannot represent were left out: see "
              f"{args.out}/finetune_data.csv", file=sys.stderr)
    return 0
