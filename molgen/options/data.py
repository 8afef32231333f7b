"""``molgen data list`` / ``molgen data get NAME``: the options of each action, declared once.

The command has actions (argparse sub-commands), which an options class cannot express: :data:`ACTIONS`
holds each action's help and options, and :func:`customize` builds them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

from molgen.options.base import add_arguments, option


@dataclass
class DataListOptions:
    """``molgen data list``: the catalog."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    json: bool = option(False, "every field (URL, checksums, citation) as JSON", flag_only=True)


@dataclass
class DataGetOptions:
    """``molgen data get NAME ...``: download and verify."""

    CLI_DEFAULTS: ClassVar[bool] = True

    names: list[str] = option(None, "catalog name(s), e.g. guacamol:train", positional=True, nargs="+",
                              metavar="NAME")
    allow_unpinned: bool = option(False, "accept a dataset whose sha256 the catalog does not pin, checked against "
                                         "the md5 its source publishes (its sha256 is then recorded next to the "
                                         "file)", flag_only=True)
    offline: bool = option(False, "never use the network (same as MOLGEN_OFFLINE=1)", flag_only=True)


#: action -> (help, options)
ACTIONS: dict[str, tuple[str, type]] = {
    "list": ("the catalog: name, size, verification, licence, local status", DataListOptions),
    "get": ("download a dataset into $MOLGEN_CACHE/datasets and verify it (or verify a file placed there by hand)",
            DataGetOptions),
}
OPTIONS = None  # every option belongs to an action (ACTIONS)


def customize(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per action; ``-q`` / ``-v`` also after the action (``molgen data get NAME -q``)."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, (help_, options) in ACTIONS.items():
        p = sub.add_parser(action, help=help_)
        add_arguments(p, options)
        # unset ones keep the value parsed before the action
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")
