"""The benchmark's rows and the published MOSES rows, read from the package data ``rows.yaml`` and
``published_moses.yaml`` and checked when loaded: the table is data, this module its model.

A :class:`Row` declares its fields with :func:`molgen.options.option`, so a misspelt key, an unknown
family or representation and an unknown training option are errors that list what is accepted. What a
row declares replaces the special cases of a runner: ``needs`` / ``role`` (a row that holds another
row's trained model, the GAN's VAE), ``diffusion_steps`` (its sampler takes ``--diffusion-steps``),
``note`` (a footnote of the table).

This module stays light (no torch, RDKit or pandas): ``molgen benchmark --help`` lists the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from molgen.configs import config_dir
from molgen.errors import ConfigError
from molgen.options.base import option, validate_mapping
from molgen.options.train import TRAINING_OPTIONS, TrainOptions
from molgen.registry import MODELS, REPRESENTATIONS

ROWS_FILE = "rows.yaml"
PUBLISHED_FILE = "published_moses.yaml"
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when built with it: --help stays fast
#: what a published row may hold besides its ``model`` name (the MOSES paper's columns)
PUBLISHED_METRICS = ("valid", "unique", "FCD/Test", "FCD/TestSF", "SNN/Test", "Frag/Test", "Scaf/Test", "Novelty")


@dataclass(frozen=True)
class Row:
    """One line of the table: a registered family, its config and what it is."""

    name: str
    family: str = option(None, "registry name (molgen.registry.MODELS)", choices=MODELS)
    config: str = option(None, "config name in the config folder (<row>.yaml is tried first)")
    label: str = option(None, "what it is, in words")
    representation: str = option(None, "the representation it trains on", choices=REPRESENTATIONS)
    needs: str | None = option(None, "an earlier row whose trained model this one holds (the GAN's VAE)")
    role: str | None = option(None, "the training option that receives the needed row's model directory")
    default: bool = option(True, "run when --families is not given", flag_only=True)
    diffusion_steps: bool = option(False, "its sampler's ancestral steps follow --diffusion-steps (a fraction of "
                                          "the model's canvas length)", flag_only=True)
    options: dict = option({}, "extra training options (a condition)")  # noqa: RUF009 (a field, copied per row)
    note: str | None = option(None, "a footnote of the table when the row is in it")


REQUIRED = ("family", "config", "label", "representation")


def _read(name: str) -> tuple[Any, str]:
    """The parsed package data file ``name`` and how to name it in an error."""
    where = f"molgen/benchmark/{name}"
    try:
        return yaml.load(resources.files(__package__).joinpath(name).read_text(), Loader=SAFE_LOADER), where
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({e})") from None


def parse_rows(table: Any, where: str) -> tuple[Row, ...]:
    """Rows from a mapping ``row name -> fields`` (table order), every key checked."""
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(f"{where}: a mapping of row name -> row fields is expected")
    rows: list[Row] = []
    for name, fields in table.items():
        at = f"{where}: row {name!r}"
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{at}: a mapping of field: value is expected")
        given = validate_mapping(Row, fields, at)
        missing = [k for k in REQUIRED if not isinstance(given.get(k), str) or not given[k]]
        if missing:
            raise ConfigError(f"{at}: missing {', '.join(missing)} (required: {', '.join(REQUIRED)})")
        if given.get("needs") is not None:
            earlier = [r.name for r in rows]
            if given["needs"] not in earlier:
                raise ConfigError(f"{at}: needs {given['needs']!r}, not an earlier row; earlier: "
                                  f"{', '.join(earlier) or 'none'}")
            if given.get("role") not in TRAINING_OPTIONS:
                raise ConfigError(f"{at}: role {given.get('role')!r} must name the training option that receives "
                                  f"the needed model; known: {', '.join(sorted(TRAINING_OPTIONS))}")
        options = given.get("options") or {}
        unknown = sorted(set(options) - set(TRAINING_OPTIONS))
        if unknown:
            raise ConfigError(f"{at}: unknown training option(s) {unknown}; known: {sorted(TRAINING_OPTIONS)}")
        given["options"] = validate_mapping(TrainOptions, options, f"{at}: options")
        rows.append(Row(name=str(name), **given))
    return tuple(rows)


def parse_published(data: Any, where: str) -> tuple[str, str, tuple[dict[str, Any], ...]]:
    """``(label, source, rows)`` of the published rows, every key checked."""
    if not isinstance(data, Mapping) or set(data) != {"label", "source", "rows"}:
        raise ConfigError(f"{where}: a mapping with exactly the keys label, source, rows is expected")
    rows = []
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, Mapping) or not isinstance(row.get("model"), str):
            raise ConfigError(f"{where}: row {i + 1}: a mapping with a 'model' name is expected")
        unknown = sorted(set(row) - {"model", *PUBLISHED_METRICS})
        if unknown:
            raise ConfigError(f"{where}: row {row['model']!r}: unknown metric(s) {unknown}; accepted: "
                              f"{', '.join(PUBLISHED_METRICS)}")
        if any(isinstance(row[k], bool) or not isinstance(row[k], (int, float)) for k in PUBLISHED_METRICS
               if k in row):
            raise ConfigError(f"{where}: row {row['model']!r}: metric values must be numbers")
        rows.append(dict(row))
    return str(data["label"]), " ".join(str(data["source"]).split()), tuple(rows)


ROWS: tuple[Row, ...] = parse_rows(*_read(ROWS_FILE))
ROW_NAMES: tuple[str, ...] = tuple(r.name for r in ROWS)
DEFAULT_ROWS: tuple[str, ...] = tuple(r.name for r in ROWS if r.default)
BY_NAME: dict[str, Row] = {r.name: r for r in ROWS}

#: Published MOSES rows: printed beside ours, never mixed into our rows' numbers.
PUBLISHED_LABEL, PUBLISHED_SOURCE, PUBLISHED = parse_published(*_read(PUBLISHED_FILE))


def parse_families(families: str | Sequence[str] | None) -> list[str]:
    """Row names from ``"a,b"`` / a list (``all``: every row, ``default``: the default rows); an unknown
    name is a ConfigError listing the accepted ones."""
    if families is None:
        return list(DEFAULT_ROWS)
    items = [families] if isinstance(families, str) else list(families)
    chosen: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip().lower().replace("_", "-")
            if not part:
                continue
            if part == "all":
                chosen += ROW_NAMES
            elif part == "default":
                chosen += DEFAULT_ROWS
            elif part in BY_NAME:
                chosen.append(part)
            else:
                raise ConfigError(f"unknown benchmark row {part!r}; accepted: {', '.join(ROW_NAMES)} "
                                  "(or 'all', 'default')")
    if not chosen:
        raise ConfigError(f"no benchmark rows given; accepted: {', '.join(ROW_NAMES)}")
    return [r.name for r in ROWS if r.name in set(chosen)]  # table order, each once


def with_needed(chosen: Sequence[str], given: Mapping[str, Any]) -> tuple[list[str], list[Row]]:
    """``chosen`` plus every row a chosen row needs whose model was not given (``given``: role -> model
    directory), in table order; and the rows that caused an addition."""
    added = [BY_NAME[n] for n in chosen if BY_NAME[n].needs and given.get(BY_NAME[n].role) is None
             and BY_NAME[n].needs not in chosen]
    wanted = {*chosen, *(r.needs for r in added)}
    return [r.name for r in ROWS if r.name in wanted], added


def resolve_row_config(row: Row, folder: str | Path | None = None) -> Path:
    """``<folder>/<row>.yaml``, else ``<folder>/<config>.yaml`` (default folder: molgen's configs)."""
    if folder is None:
        folder = config_dir()
        shown = "molgen's configs"
    else:
        folder, shown = Path(folder), str(folder)
        if not folder.is_dir():
            raise ConfigError(f"--config-dir {folder}: not a folder")
    for name in (row.name, row.config):
        p = folder / f"{name}.yaml"
        if p.is_file():
            return p
    raise ConfigError(f"row {row.name!r}: neither {row.name}.yaml nor {row.config}.yaml in {shown}")
