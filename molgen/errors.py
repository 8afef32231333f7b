"""Every molgen exception and warning, and the one mapping from an exception to a per-row status.

User-facing errors derive from built-in types (``ValueError``, ``KeyError``, ``NotImplementedError``)
so plain ``except ValueError`` keeps working; the CLI prints them as one line.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class CapabilityError(NotImplementedError):
    """The model family does not support this operation (e.g. a likelihood from a GAN)."""


class TokenizeError(ValueError):
    """The string cannot be written in this representation at all (e.g. the regex does not cover it)."""


class OOVError(KeyError):
    """Tokens that are not in the vocabulary (all of them are listed), under the ``"error"`` OOV policy."""

    def __init__(self, token: str | Iterable[str]) -> None:
        tokens = [token] if isinstance(token, str) else list(dict.fromkeys(token))
        super().__init__(tokens[0])
        self.tokens = tokens
        self.token = tokens[0]

    def __str__(self) -> str:
        return f"token(s) {', '.join(map(repr, self.tokens))} not in the vocabulary"


class TooLongError(ValueError):
    """The molecule needs more symbols than the model represents (``max_len``)."""

    def __init__(self, n_tokens: int, max_len: int) -> None:
        super().__init__(f"{n_tokens} tokens > max_len {max_len}")
        self.n_tokens, self.max_len = n_tokens, max_len


class InputError(ValueError):
    """A file that cannot be read as SMILES at all (missing, empty, binary, damaged, wrong column)."""


class ModelFormatError(ValueError):
    """The path is not a (readable, compatible) molgen model directory."""


class ConfigError(ValueError):
    """An unknown option or an unsupported value; the message lists what is accepted."""


class OptionError(ConfigError, TypeError):
    """An unknown keyword argument to a public function (a TypeError, as Python's own, and a ConfigError)."""


class CollapseWarning(UserWarning):
    """Posterior collapse (z ignored) or mixture collapse (few components used) was detected."""


def row_status(exc: BaseException) -> str:
    """Per-row status of a featurization failure: the one place that maps exceptions to statuses.

    ``oov_token:<tok>[,<tok>...]`` (every unknown token), ``too_long``, ``invalid_smiles`` (cannot be
    written in the representation), else ``error``.
    """
    if isinstance(exc, OOVError):
        return "oov_token:" + ",".join(exc.tokens)
    if isinstance(exc, TooLongError):
        return "too_long"
    if isinstance(exc, TokenizeError):
        return "invalid_smiles"
    return "error"


def check_options(what: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """Raise :class:`ConfigError` naming unknown options and listing the accepted ones."""
    accepted = sorted(accepted)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ConfigError(f"{what}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}")


def check_choice(what: str, value: object, accepted: Iterable[object]) -> None:
    """Raise :class:`ConfigError` if ``value`` is not one of ``accepted`` (listed in the message)."""
    accepted = list(accepted)
    if value not in accepted:
        raise ConfigError(f"{what} must be one of {', '.join(map(str, accepted))}; got {value!r}")


def strict(fn: F) -> F:
    """Make unknown keyword arguments an :class:`OptionError` that lists the accepted ones.

    Python's own error names only the bad keyword; a user who typed ``temprature=`` wants the list.
    """
    sig = inspect.signature(fn)
    accepted = [p.name for p in sig.parameters.values()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "cls")]
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        raise TypeError(f"strict() needs explicit keyword arguments, {fn.__qualname__} takes **kwargs")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        unknown = set(kwargs) - set(accepted)
        if unknown:
            raise OptionError(f"{fn.__qualname__}(): unknown keyword argument(s) {', '.join(sorted(unknown))}; "
                              f"accepted: {', '.join(accepted)}")
        return fn(*args, **kwargs)

    wrapper.__strict__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
