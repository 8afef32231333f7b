"""``molgen info``: describe a saved model directory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from molgen.options.base import option


@dataclass
class InfoOptions:
    """Options of ``molgen info``."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    model: str = option(None, "model directory or pretrained model name (molgen pretrained)", positional=True)
    json: bool = option(False, "every field (config, metadata) as JSON instead of the summary", flag_only=True)


OPTIONS = InfoOptions
