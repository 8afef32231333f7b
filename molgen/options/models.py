"""``molgen models``: list the registered generator families (no torch unless ``--json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from molgen.options.base import option


@dataclass
class ModelsOptions:
    """Options of ``molgen models``."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    json: bool = option(False, "machine-readable output", flag_only=True)


OPTIONS = ModelsOptions
