"""Progress bars that are quiet where nobody watches them.

One bar per call, chosen by where the output goes:

* a terminal: an ordinary ``tqdm`` bar;
* a Jupyter kernel with ``ipywidgets``: a ``tqdm.notebook`` widget that updates in place;
* a Jupyter kernel without ``ipywidgets``: a plain text bar that redraws one line with carriage
  returns only (Jupyter renders that in place), refreshed at most twice a second. ``tqdm.auto`` would
  emit a ``TqdmWarning`` ("IProgress not found") into the cell there: it is never imported then;
* stderr a file or a pipe (``make quickstart 2> log``, a batch job): at most one plain line per
  minute, no carriage-return spam.

A bar over an iterable of one item (one batch, one chunk) says nothing and is not drawn.

``molgen -q`` (or :func:`set_quiet`) turns every bar off.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

_QUIET = False
LOG_INTERVAL_S = 60.0  # seconds between lines when the output is not a terminal
NOTEBOOK_INTERVAL_S = 0.5  # seconds between redraws of a text bar in a notebook without widgets


def set_quiet(quiet: bool) -> None:
    """Turn every molgen progress bar off (``-q``) or back on."""
    global _QUIET
    _QUIET = bool(quiet)


def quiet() -> bool:
    """True after ``set_quiet(True)`` (``molgen -q``)."""
    return _QUIET


def in_notebook() -> bool:
    """Running in a Jupyter kernel (notebook, lab, VS Code, Colab): IPython's kernel shell is active."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    try:
        shell = sys.modules["IPython"].get_ipython()
    except Exception:  # an IPython without get_ipython at the top level
        return False
    return shell is not None and hasattr(shell, "kernel")


def notebook_widgets() -> bool:
    """``ipywidgets`` can draw a ``tqdm.notebook`` bar (checked without importing ``tqdm.auto``)."""
    try:
        from tqdm import notebook  # lazy: a probe; tqdm.notebook imports IPython / ipywidgets
    except Exception:
        return False
    return getattr(notebook, "IProgress", None) is not None


def interactive() -> bool:
    """stderr is a terminal, or we run in a notebook kernel."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) or in_notebook()


def bar_kind() -> str:
    """Which bar :func:`progress_bar` draws now: ``"off"`` (quiet), ``"widget"`` (notebook with
    ipywidgets), ``"notebook-text"`` (notebook without), ``"terminal"`` or ``"log"`` (a file or pipe)."""
    if _QUIET:
        return "off"
    if in_notebook():
        return "widget" if notebook_widgets() else "notebook-text"
    if getattr(sys.stderr, "isatty", lambda: False)():
        return "terminal"
    return "log"


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
    """One ``tqdm`` bar for where the output goes (see the module docstring); nothing when quiet."""
    kind = "off" if disable else bar_kind()
    steps = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    if iterable is not None and steps is not None and steps <= 1:
        kind = "off"  # 0/1 -> 1/1 is no progress information
    if kind == "widget":
        from tqdm.notebook import tqdm as widget  # lazy: IPython / ipywidgets, in a notebook only

        return widget(iterable, desc=desc, total=total, **kwargs)
    if kind == "log":
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, 10.0))
        kwargs.setdefault("file", _Lines(sys.stderr))
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("dynamic_ncols", False)
        kwargs.setdefault("ncols", 100)
    elif kind == "notebook-text":
        # one line redrawn with "\r" (never a cursor move: a bar that would sit below another
        # redraws the same line), not too often: every redraw is a message to the front end
        kwargs.setdefault("mininterval", NOTEBOOK_INTERVAL_S)
        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("position", 0)
        kwargs.setdefault("dynamic_ncols", False)
        kwargs.setdefault("ncols", 100)
    return tqdm(iterable, desc=desc, total=total, disable=kind == "off", **kwargs)
