"""Tiny typed registries, one per category (models, representations, encoders, priors, backbones, ...).

CLI choices and ``molgen models`` are read from here, so adding a class is one decorator, never an
``if name == ...`` branch. Components are built from ``{name, args}`` specs with :meth:`Registry.build`,
which checks the user's ``args`` against the component's signature and lists the accepted ones.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from molgen.errors import ConfigError

T = TypeVar("T")


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def as_spec(value: Any) -> dict[str, Any]:
    """Normalize a component spec: ``"mog"`` or ``{"name": "mog", "args": {...}}`` -> the dict form."""
    if isinstance(value, str):
        return {"name": value, "args": {}}
    if isinstance(value, dict) and "name" in value and set(value) <= {"name", "args"}:
        args = value.get("args") or {}
        if not isinstance(args, dict):
            raise ConfigError(f"component args must be a mapping, got {args!r}")
        return {"name": str(value["name"]), "args": dict(args)}
    raise ConfigError(f"a component is a name or {{name, args}}, got {value!r}")


def accepted_args(obj: Callable, wiring: set[str] = frozenset()) -> dict[str, Any]:
    """Keyword arguments a component accepts from users (its signature minus the wiring), with defaults."""
    out = {}
    for p in inspect.signature(obj).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in wiring or p.name == "self":
            continue
        out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


class Registry(Generic[T]):
    """Maps lenient names ("Mog", "mog", "MOG") to objects; unknown names list the valid choices."""

    def __init__(self, category: str, modules: tuple[str, ...] = (), declared: tuple[str, ...] = ()) -> None:
        self.category = category
        self._items: dict[str, T] = {}
        self._modules = modules  # imported on first lookup, so registering stays lazy
        self._declared = tuple(sorted(_norm(n) for n in declared))  # what ``modules`` register (tested)
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = _norm(name)
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.category} {name!r} is already registered")
            self._items[key] = obj
            return obj

        return deco

    @contextlib.contextmanager
    def temporarily(self, name: str, obj: T) -> Iterator[T]:
        """Register ``obj`` for the duration of a ``with`` block (tests of test-only families)."""
        self._load()
        self.register(name)(obj)
        try:
            yield obj
        finally:
            self._items.pop(_norm(name), None)

    @contextlib.contextmanager
    def scoped(self) -> Iterator[Registry]:
        """Registrations made inside a ``with`` block are undone after it (a family defined by a test
        or a notebook cell with the ordinary ``@MODELS.register`` decorator)."""
        self._load()
        before = dict(self._items)
        try:
            yield self
        finally:
            self._items = before

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._modules:
                importlib.import_module(mod)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[_norm(name)]
        except (KeyError, AttributeError):
            raise ConfigError(
                f"unknown {self.category} {name!r}; choose one of: {', '.join(self.names())}") from None

    def build(self, spec: Any, **wiring: Any) -> Any:
        """Instantiate ``spec`` (name or ``{name, args}``); ``wiring`` are the arguments the host model
        supplies (sizes, vocabularies). Unknown user args are an error listing the accepted ones."""
        spec = as_spec(spec)
        obj = self.get(spec["name"])
        params = inspect.signature(obj).parameters
        wired = {k: v for k, v in wiring.items() if k in params}
        accepted = accepted_args(obj, set(wiring))
        unknown = sorted(set(spec["args"]) - set(accepted))
        if unknown:
            raise ConfigError(f"{self.category} {spec['name']!r}: unknown argument(s) {', '.join(unknown)}; "
                              f"accepted: {', '.join(sorted(accepted)) or 'none'}")
        return obj(**wired, **spec["args"])

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def declared_names(self) -> list[str]:
        """The names the registry's modules register, without importing them (CLI choices, ``--help``);
        ``tests/test_cli_fast.py`` checks they equal :meth:`names` after the imports."""
        return list(self._declared)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: str) -> bool:
        self._load()
        return _norm(name) in self._items


# Each registry: the modules that register its entries, and the names they register (declared here so
# the CLI lists choices without importing torch / Lightning; a test keeps the two in step).
MODELS: Registry = Registry("model", ("molgen.models.transformer", "molgen.models.vae", "molgen.models.flow",
                                   "molgen.models.diffusion", "molgen.models.gan"),
                            ("transformer", "vae", "flow", "diffusion", "gan"))
REPRESENTATIONS: Registry = Registry("representation", ("molgen.tokenizers.smiles", "molgen.tokenizers.selfies",
                                                        "molgen.featurizers.graph"),
                                     ("smiles", "smiles-kekule", "selfies", "graph"))
TOKENIZERS = REPRESENTATIONS  # string representations are tokenizers (and graphs one more representation)
ENCODERS: Registry = Registry("encoder", ("molgen.encoders.sequence", "molgen.encoders.graph"),
                              ("sequence", "graph"))
PRIORS: Registry = Registry("prior", ("molgen.models.priors",), ("flow", "gaussian", "mog", "vamp"))
BACKBONES: Registry = Registry("backbone", ("molgen.nn.transformer",), ("transformer",))
FEATURIZERS: Registry = Registry("featurizer", ("molgen.featurizers.graph",), ("graph",))
