"""``molgen pretrained``: the models that ship with molgen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from molgen.options.base import option


@dataclass
class PretrainedOptions:
    """Options of ``molgen pretrained``."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    json: bool = option(False, "every field (path, likelihood unit, n) as JSON", flag_only=True)
    verify: bool = option(False, "also check each model's files against its SHA256SUMS (a few MB each)",
                          flag_only=True)


OPTIONS = PretrainedOptions
