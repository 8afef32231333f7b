"""``molgen sample``: every sampling option, declared once (checked before the model loads by
:func:`molgen.cli.sample.check_options`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from molgen.options.base import option

#: ``--guidance`` when a ``--condition`` is given without one. w = 0 is the conditional model p(x | c)
#: itself, with its exact likelihood. Measured on moses-transformer-qed-logp (benchmarks/results/
#: conditional_guidance.md, w in 0-2): no w > 0 helps both properties. logP is best at w = 0-0.25
#: (MAE 0.60 / 0.57, within noise) and overshoots from w = 0.5 (target 1: 0.96 at w = 0, 0.45 at 0.5,
#: -0.85 at 2); QED gains from w = 0.5-1 (MAE 0.092 -> 0.076) but loses validity (0.74 -> 0.64,
#: 0.63 -> 0.35 for target 0.6). So the default is 0, and guidance is an opt-in for QED-like targets.
DEFAULT_GUIDANCE = 0.0
#: :data:`molgen.conditioning.EXTRAPOLATION_SD` as the help states it (that module imports numpy, this one
#: must not: ``molgen --help`` builds every parser); ``tests/test_cli_fast.py`` keeps the two equal.
EXTRAPOLATION_SD_IN_HELP = 1.0
FRAGMENTS = "fragment-constrained generation (one of --scaffold / --linker / --extend)"


@dataclass
class SampleOptions:
    """Options of one ``molgen sample`` run."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    model: str = option(None, "model directory or pretrained model name (molgen pretrained)", required=True)
    n: int = option(None, "number of samples; every one is written, in order, with an id (sample_000001, ...); "
                          "invalid ones are kept and marked", type=int, flags=("-n",), required=True)
    output: str = option(None, ".smi (SMILES<TAB>id; ' invalid' after the id of an invalid sample), .csv / .tsv / "
                               ".parquet (id first, every column; valid 1/0, booleans in .parquet) or .sdf (one "
                               "record per sample titled by its id; an invalid one is an empty record with its "
                               "string and valid 0)", flags=("-o", "--output"), required=True)
    seed: int | None = option(None, "random seed (default: drawn, and printed)", type=int)
    temperature: float = option(1.0, "1.0 samples the model itself; other values are a different sampler",
                                type=float)
    condition: list[str] | None = option(
        None, "conditional models: a property target, e.g. --condition qed=0.9 (repeatable); a target more than "
              f"{EXTRAPOLATION_SD_IN_HELP:g} training sd outside the training range is refused (see --extrapolate)",
        repeat=True, metavar="PROPERTY=VALUE")
    guidance: float | None = option(
        None, f"classifier-free guidance strength (default {DEFAULT_GUIDANCE:g}: the conditional model p(x | c); "
              "w > 0 pushes further from the unconditional model and can overshoot, guided samples have no "
              "likelihood; the model card says what w does per property)", type=float, metavar="W")
    extrapolate: bool = option(False, "sample a --condition target far outside the training range anyway (the "
                                      "model has not seen such molecules; expect few valid ones)", flag_only=True)
    batch_size: int = option(1024, "molecules per forward pass", type=int)
    device: str = option("cpu", "torch device, e.g. cpu or cuda")
    devices: int = option(1, "processes drawing shards in parallel (default one shard per process)", type=int,
                          metavar="N")
    shards: int | None = option(None, "split the draw into S shards of consecutive molecules (molecule i is drawn "
                                      "from its own random stream keyed by (seed, i)): the file is the "
                                      "single-process file whatever --shards and --devices (default: --devices)",
                                type=int, metavar="S")
    scaffold: str | None = option(None, "decorate a scaffold: at its attachment points `*`, or without any at any "
                                        "free hydrogen (e.g. 'c1ccc2[nH]ccc2c1'); every valid output contains it "
                                        "(column contains_fragments)", metavar="SMILES", group=FRAGMENTS)
    linker: str | None = option(None, "design a linker between two fragments with one `*` each (e.g. "
                                      "'*C1CCNCC1.*c1ccncc1')", metavar="FRAG1.FRAG2", group=FRAGMENTS)
    extend: str | None = option(None, "grow a motif from its one attachment point `*` (e.g. '*C(=O)N1CCOCC1')",
                                metavar="SMILES", group=FRAGMENTS)


OPTIONS = SampleOptions
