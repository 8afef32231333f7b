"""Tiny typed registries: one per category (models, tokenizers, encoders, priors, metrics, datasets).

CLI choices and ``molgen models`` are read from here, so adding a class is one decorator, never an
``if name == ...`` branch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


class Registry(Generic[T]):
    """Maps lenient names ("Mog", "mog", "MOG") to objects; unknown names list the valid choices."""

    def __init__(self, category: str, modules: tuple[str, ...] = ()) -> None:
        self.category = category
        self._items: dict[str, T] = {}
        self._modules = modules  # imported on first lookup, so registering stays lazy
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = _norm(name)
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.category} {name!r} is already registered")
            self._items[key] = obj
            return obj

        return deco

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._modules:
                importlib.import_module(mod)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[_norm(name)]
        except KeyError:
            raise KeyError(
                f"unknown {self.category} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: str) -> bool:
        self._load()
        return _norm(name) in self._items


MODELS: Registry = Registry("model", ("molgen.models.transformer", "molgen.models.vae"))
TOKENIZERS: Registry = Registry("tokenizer", ("molgen.tokenizers.smiles", "molgen.tokenizers.selfies"))
ENCODERS: Registry = Registry("encoder", ("molgen.encoders.sequence", "molgen.encoders.graph"))
PRIORS: Registry = Registry("prior", ("molgen.models.priors",))
FEATURIZERS: Registry = Registry("featurizer", ("molgen.featurizers.graph",))
