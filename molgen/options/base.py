"""The machinery behind the options models: :func:`option` declares a field once, :func:`add_arguments`
builds its argparse options, :func:`validate_mapping` checks a YAML mapping (unknown keys, types and
choices, each error listing what is accepted), :func:`defaults` gives the Python defaults.

Choices may be a registry (``molgen.registry.MODELS``): they are read from its declared names, so the
CLI lists them without importing the families (chemprop's ``LookupAction`` idea).

Two kinds of command: one with a config layer (``molgen train``: CLI over YAML over defaults) parses a
flag not given as ``None`` and merges; one without (``molgen sample``) sets ``CLI_DEFAULTS = True`` on
its options class, and its parsed namespace holds every option's default, as argparse's defaults would.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from molgen.errors import ConfigError

_NO_DEFAULT = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """What one option declares beyond its name and default."""

    help: str = ""
    type: Callable[[str], Any] | None = None   # CLI parser of one value (int, float, str, ...); None: str
    choices: Any = None                          # a sequence, or a Registry (its declared names)
    flags: tuple[str, ...] = ()                  # CLI flags; () -> --name-with-dashes
    metavar: str | None = None
    cli: bool = True                             # False: YAML / Python only
    yaml: bool = True                            # False: CLI / Python only (e.g. --out given per run)
    repeat: bool = False                         # a list, one value per repeated flag
    nargs: str | None = None                     # argparse nargs ("+", "*", "?"); "+" / "*": a list
    flag_only: bool = False                      # a boolean switch (store_true)
    required: bool = False                       # required on the command line
    positional: bool = False
    group: str | None = None                     # argparse argument group title

    def choice_names(self) -> list[str] | None:
        """The accepted values (a registry's declared names: no family is imported), or None."""
        if self.choices is None:
            return None
        if hasattr(self.choices, "declared_names"):
            return list(self.choices.declared_names())
        return [str(c) for c in self.choices]

    @property
    def is_list(self) -> bool:
        """Whether the option's value is a list (a repeated flag, or ``nargs`` "+" / "*")."""
        return self.repeat or self.nargs in ("+", "*")


def option(default: Any = None, help: str = "", **spec: Any) -> Any:
    """A dataclass field with its :class:`OptionSpec` (mutable defaults are copied per instance)."""
    meta = {"option": OptionSpec(help=help, **spec)}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "option" in f.metadata]


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not _NO_DEFAULT:
        return f.default
    if f.default_factory is not _NO_DEFAULT:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def spec_of(cls: type, name: str) -> OptionSpec:
    """The :class:`OptionSpec` of option ``name`` of ``cls``."""
    return next(f.metadata["option"] for f in _fields(cls) if f.name == name)


def names(cls: type, *, where: str = "any") -> list[str]:
    """Option names of ``cls`` (``where``: ``any``, ``cli`` or ``yaml``)."""
    out = []
    for f in _fields(cls):
        spec = f.metadata["option"]
        if where == "any" or (where == "cli" and spec.cli) or (where == "yaml" and spec.yaml):
            out.append(f.name)
    return out


def defaults(cls: type) -> dict[str, Any]:
    """Every option's default, as a fresh dict."""
    return {f.name: _default_of(f) for f in _fields(cls)}


def parses_defaults(cls: type) -> bool:
    """Whether ``cls``'s command has no config layer: its parsed options hold their defaults."""
    return bool(getattr(cls, "CLI_DEFAULTS", False))


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, with_defaults: bool | None = None) -> None:
    """Add every CLI option of ``cls`` to ``parser``. Parsed values default to ``None`` (not given), so a
    YAML config or the Python default applies unless the user typed the flag; :func:`options_from_namespace`
    keeps only what was given. With ``with_defaults`` (default: the class's ``CLI_DEFAULTS``) a flag not
    given parses as its declared default instead."""
    fill = parses_defaults(cls) if with_defaults is None else with_defaults
    groups: dict[str, Any] = {}
    for f in _fields(cls):
        spec: OptionSpec = f.metadata["option"]
        if not spec.cli:
            continue
        target = parser
        if spec.group:
            target = groups.setdefault(spec.group, parser.add_argument_group(spec.group))
        default = _default_of(f)
        help_ = spec.help
        if default not in (None, False, [], ()) and "default" not in help_ and not spec.required:
            help_ = f"{help_} (default {default})" if help_ else f"default {default}"
        kw: dict[str, Any] = {"help": help_}
        if spec.metavar:
            kw["metavar"] = spec.metavar
        choices = spec.choice_names()
        if choices is not None:
            kw["choices"] = choices
        if spec.nargs is not None:
            kw["nargs"] = spec.nargs
        if spec.positional:
            parser_args: Sequence[str] = (f.name,)
        else:
            parser_args = spec.flags or ("--" + f.name.replace("_", "-"),)
            kw["dest"] = f.name
            kw["default"] = default if fill else None
            if spec.required:
                kw["required"] = True
        if spec.flag_only:
            kw.update(action="store_true")
            kw["default"] = bool(default) if fill else None
            kw.pop("choices", None)
        elif spec.repeat:
            kw.update(action="append", type=spec.type or str)
        else:
            kw["type"] = spec.type or str
        target.add_argument(*parser_args, **kw)


def options_from_namespace(cls: type, ns: argparse.Namespace) -> dict[str, Any]:
    """The options the user gave on the command line (flags left out are not in the dict)."""
    out = {}
    for name in names(cls, where="cli"):
        value = getattr(ns, name, None)
        if value is not None:
            out[name] = value
    return out


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _check_value(cls: type, name: str, value: Any, where: str) -> Any:
    spec = spec_of(cls, name)
    if value is None:
        return None
    if spec.is_list and not isinstance(value, (list, tuple)):
        value = [value]
    items = list(value) if spec.is_list else [value]
    want = bool if spec.flag_only else spec.type
    for item in items:
        if want in (int, float) and (isinstance(item, bool) or not isinstance(item, (int, float))
                                     or (want is int and not float(item).is_integer())):
            raise ConfigError(f"{where}: option {name!r} must be {_TYPE_NAMES[want]}, got {item!r}")
        if want is bool and not isinstance(item, bool):
            raise ConfigError(f"{where}: option {name!r} must be true or false, got {item!r}")
        choices = spec.choice_names()
        if choices is not None and str(item).strip().lower().replace("_", "-") not in \
                {c.lower().replace("_", "-") for c in choices}:
            raise ConfigError(f"{where}: option {name!r} is {item!r}; choose one of: {', '.join(choices)}")
    if want is int and not spec.is_list:
        value = int(value)
    return value


def validate_mapping(cls: type, mapping: Mapping[str, Any], where: str, *,
                     extra: Sequence[str] = ()) -> dict[str, Any]:
    """A YAML / Python mapping checked against ``cls``: unknown keys (beyond ``extra``) are an error that
    lists the accepted ones, values of the wrong type or outside the choices too."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: a config must be a mapping of option: value")
    known = names(cls, where="yaml")
    unknown = sorted(set(mapping) - set(known) - set(extra))
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown}; known: {sorted(known)}")
    return {k: (_check_value(cls, k, v, where) if k in known else v) for k, v in mapping.items()}
