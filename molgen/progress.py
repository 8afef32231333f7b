"""Progress bars that are quiet where nobody watches them.

On a terminal or in a notebook: an ordinary ``tqdm`` bar. When stderr is a file or a pipe
(``make quickstart 2> log``, a batch job): at most one plain line per minute, no carriage-return
spam. ``molgen -q`` (or :func:`set_quiet`) turns every bar off.
"""

from __future__ import annotations

import sys
from typing import Any

_QUIET = False
LOG_INTERVAL_S = 60.0  # seconds between lines when the output is not a terminal


def set_quiet(quiet: bool) -> None:
    """Turn every molgen progress bar off (``-q``) or back on."""
    global _QUIET
    _QUIET = bool(quiet)


def interactive() -> bool:
    """stderr is a terminal, or we run in a notebook kernel."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) or "ipykernel" in sys.modules


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into plain lines."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, s: str) -> None:
        s = s.replace("\r", "").strip()
        if s:
            self.stream.write(s + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Any = None, *, desc: str | None = None, total: float | None = None,
                 disable: bool = False, **kwargs: Any):
    """``tqdm(iterable, ...)`` on a terminal; a line per minute at most elsewhere; nothing when quiet."""
    from tqdm.auto import tqdm

    disable = disable or _QUIET
    if not disable and not interactive():
        from tqdm import tqdm as plain

        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, 10.0))
        kwargs.setdefault("file", _Lines(sys.stderr))
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("dynamic_ncols", False)
        kwargs.setdefault("ncols", 100)
        return plain(iterable, desc=desc, total=total, **kwargs)
    return tqdm(iterable, desc=desc, total=total, disable=disable, **kwargs)
