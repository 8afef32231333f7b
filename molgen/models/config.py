"""Config dataclasses: the single source of a model's hyperparameters.

Each family declares ``Config(ModelConfig)``; ``from_dict`` is strict (unknown keys are an error that
lists the accepted ones) and accepts what YAML files and ``--set`` give:

* plain fields: ``{"max_len": 80, "d_z": 32}``;
* component specs (fields listed in ``COMPONENTS``): a name (``"mog"``), ``{"name": .., "args": {..}}``,
  or dotted keys that set one argument (``"prior.n_components": 16``, ``"encoder.name": "graph"``).

Component arguments are checked when the component is built (``Registry.build``), against its
signature. ``to_dict`` gives the JSON stored in ``config.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from molgen.errors import ConfigError
from molgen.registry import as_spec


@dataclasses.dataclass
class ModelConfig:
    """Fields every family shares. ``max_len``: longest token string (without BOS/EOS) represented."""

    COMPONENTS: ClassVar[tuple[str, ...]] = ()

    max_len: int = 100

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def accepted_keys(cls) -> list[str]:
        return sorted(set(cls.field_names()) | {f"{c}.<arg>" for c in cls.COMPONENTS}
                      | {f"{c}.name" for c in cls.COMPONENTS})

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None = None, *, what: str | None = None) -> ModelConfig:
        """Strictly parse ``d`` (see the module docstring); defaults fill the rest."""
        what = what or f"{cls.__qualname__}"
        names = set(cls.field_names())
        plain: dict[str, Any] = {}
        dotted: dict[str, dict[str, Any]] = {}
        unknown = []
        for key, value in (d or {}).items():
            head, dot, rest = str(key).partition(".")
            if dot and head in cls.COMPONENTS:
                dotted.setdefault(head, {})[rest] = value
            elif key in names and not dot:
                plain[key] = value
            else:
                unknown.append(str(key))
        if unknown:
            raise ConfigError(f"{what}: unknown option(s) {', '.join(sorted(unknown))}; "
                              f"accepted: {', '.join(cls.accepted_keys())}")
        defaults = cls()
        for comp in cls.COMPONENTS:
            spec = as_spec(plain.get(comp, getattr(defaults, comp)))
            for arg, value in dotted.get(comp, {}).items():
                if arg == "name":
                    if value != spec["name"]:
                        spec = {"name": str(value), "args": {}}
                else:
                    spec["args"][arg] = value
            plain[comp] = spec
        cfg = cls(**plain)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check values (subclasses add theirs); raise :class:`ConfigError` listing what is accepted."""
        if not isinstance(self.max_len, int) or self.max_len < 1:
            raise ConfigError(f"max_len must be a positive integer, got {self.max_len!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
