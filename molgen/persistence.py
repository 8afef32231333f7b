"""Portable model directories: JSON configs + safetensors weights. Nothing is ever unpickled.

Layout of a model directory (format 2)::

    config.json          {"format": "molgen-model", "format_version": 2, "model": registry name,
                          "config": the family's config dataclass (component specs included),
                          "representation": registry name of the representation or null,
                          "nested": {keyword: sub-directory} of nested saved models,
                          "policy", "likelihood": {kind, object, unit} or null, "capabilities",
                          "molgen_version"}
    representation.json  the representation's own state (:meth:`Representation.to_dict
                         <molgen.representation.Representation.to_dict>`: a tokenizer's vocabulary, OOV
                         policy and settings; a graph representation's atom and bond labels)
    model.safetensors    weights (without those of nested models)
    metadata.json        training data hash, split, standardization policy, versions, dates, final metrics
    nested/NAME/         a nested model directory, same layout (the GAN's VAE)

A missing file, a foreign format, an old or a newer format version is a :class:`ModelFormatError`
that says what to do. Lightning ``.ckpt`` files are for resuming training only.
"""

from __future__ import annotations

import errno
import importlib.metadata as md
import json
import os
import platform
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from molgen._version import __version__
from molgen.chem import Policy
from molgen.conditioning import ConditionSpace
from molgen.errors import ConfigError, ModelFormatError
from molgen.registry import MODELS
from molgen.representation import load_representation

FORMAT = "molgen-model"
FORMAT_VERSION = 2

__all__ = ["ModelFormatError", "OutputError", "check_writable", "load_pretrained", "read_condition_space", "read_config",
           "save_pretrained"]


def versions() -> dict[str, str]:
    """Versions of the packages that change numbers (for metadata and reports)."""
    out = {"python": platform.python_version()}
    for pkg in ("molgen", "torch", "lightning", "rdkit", "selfies", "torch_geometric"):
        try:
            out[pkg] = md.version(pkg.replace("_", "-"))
        except md.PackageNotFoundError:
            pass
    return out


def model_config(model) -> dict[str, Any]:
    """The ``config.json`` of a model: one source for files, ``molgen info`` and reports."""
    label = model.likelihood_label()
    rep = model.representation
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "config": model.config.to_dict(),
        "representation": rep.name if rep is not None else None,
        "nested": {name: f"nested/{name}" for name in model.nested},  # the family's declared roles
        "policy": model.policy.to_dict(),
        "likelihood": label.to_dict() if label is not None else None,
        "capabilities": sorted(model.capabilities),
        "molgen_version": __version__,
    }


def _nested_prefixes(model) -> tuple[str, ...]:
    return tuple(f"{name}." for name in model.nested)


class OutputError(ValueError):
    """An output location that cannot be written (missing permission, full disk): said before work starts."""


def check_writable(path: str | Path, need_bytes: int = 0) -> Path:
    """Make ``path`` (a directory) and prove it writable with a probe file, and that ``need_bytes`` fit
    on its disk; an :class:`OutputError` naming the problem otherwise. Called before hours of work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".molgen-write-probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        why = "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise OutputError(f"cannot write to {path}: {why}") from None
    free = shutil.disk_usage(path).free
    if need_bytes and free < need_bytes:
        raise OutputError(f"{path}: {free / 2**20:.0f} MiB free on its disk, this run needs about "
                          f"{need_bytes / 2**20:.0f} MiB (model, checkpoints and logs)")
    return path


def save_pretrained(model, path: str | Path) -> Path:
    """Write ``model``'s directory atomically: everything goes to a temporary sibling first; a new
    directory is then renamed into place, an existing one (a training run's folder) gets its files
    replaced one by one with ``config.json`` removed first and written last, so a crash or a full disk
    never leaves a directory that loads with a mix of old and new files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.saving-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_model(model, tmp)
        if not path.exists():
            os.rename(tmp, path)
            return path
        (path / "config.json").unlink(missing_ok=True)  # from here on the old directory does not load
        for item in sorted(tmp.iterdir(), key=lambda p: p.name == "config.json"):  # config.json last
            dest = path / item.name
            if item.is_dir():
                shutil.rmtree(dest, ignore_errors=True)
            os.replace(item, dest)
    except OSError as e:
        raise OutputError(f"cannot save the model to {path}: {e.strerror or e}; nothing loadable was left "
                          "half-written there") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _write_model(model, path: Path) -> None:
    from safetensors.torch import save_file  # lazy: imports torch; read_config stays torch-free

    path.mkdir(parents=True)
    config = model_config(model)
    for name, sub in config["nested"].items():
        _write_model(getattr(model, name), path / sub)
    if model.representation is not None:
        model.representation.save(path / "representation.json")
    skip = _nested_prefixes(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith(skip)}
    save_file(state, str(path / "model.safetensors"), metadata={"format": FORMAT})
    meta = {**model.metadata, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "policy": model.policy.to_dict()}
    (path / "metadata.json").write_text(json.dumps(meta, indent=1, default=str))
    # config.json last: a directory without it is visibly incomplete
    (path / "config.json").write_text(json.dumps(config, indent=1))


def _inside(root: Path, name: str) -> Path:
    """``root / name``, refused if it (through ``..`` or a symbolic link) resolves outside ``root``."""
    target = (root / name).resolve()
    base = root.resolve()
    if target != base and base not in target.parents:
        raise ModelFormatError(f"{root}: {name} points outside the model directory ({target}); refused")
    return target


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ModelFormatError(f"{path.parent} is not a molgen model directory: {path.name} is missing. "
                               "Train one with `molgen train ... --out DIR` or point to such a directory.")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{path} is corrupt (not JSON: {e})") from None
    if not isinstance(d, dict):
        raise ModelFormatError(f"{path} is corrupt (expected a JSON object)")
    return d


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_file():
        if path.suffix == ".ckpt":
            raise ModelFormatError(f"{path} is a Lightning training checkpoint (for resuming with "
                                   "`molgen train --resume`); load the model directory written next to it")
        raise ModelFormatError(f"{path} is a file; a molgen model is a directory with config.json")
    cfg = _read_json(_inside(path, "config.json"))
    if cfg.get("format") != FORMAT:
        raise ModelFormatError(f"{path}/config.json is not a molgen model config (format "
                               f"{cfg.get('format')!r}); a Hugging Face or foreign config cannot be loaded")
    version = cfg.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        writer = cfg.get("molgen_version")
        raise ModelFormatError(f"{path} was written by a newer molgen ({'molgen ' + str(writer) + ', ' if writer else ''}"
                               f"model format {version}); this molgen {__version__} reads format {FORMAT_VERSION}: "
                               f"upgrade molgen{' to >= ' + str(writer) if writer else ''} to load it")
    if version < FORMAT_VERSION:
        raise ModelFormatError(f"{path} has the old model format {version} (molgen 0.1 before the contract "
                               f"change); retrain it with this molgen (format {FORMAT_VERSION})")
    return cfg


def read_condition_space(path: str | Path):
    """The :class:`~molgen.conditioning.ConditionSpace` of the model directory ``path`` (None for an
    unconditional model), read from its ``config.json`` alone: no weights, no torch (``molgen sample``
    checks a request with it before it loads the model)."""
    cfg = read_config(path)
    spec = (cfg.get("config") or {}).get("condition") if isinstance(cfg.get("config"), dict) else None
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise ModelFormatError(f"{path}/config.json: the condition space is not a JSON object: {spec!r}")
    try:
        return ConditionSpace.from_dict(spec)
    except ConfigError as e:
        raise ModelFormatError(f"{path}/config.json: {e}") from None


def load_pretrained(path: str | Path, map_location: str = "cpu"):
    """Rebuild a model from its directory; weights are read with safetensors (no pickle). The representation
    is rebuilt by its registered name (``config.json``) from its state (``representation.json``)."""
    from safetensors.torch import load_file  # lazy: imports torch; read_config stays torch-free

    path = Path(path)
    cfg = read_config(path)
    try:
        cls = MODELS.get(str(cfg.get("model")))
        config = cls.config_class.from_dict(cfg.get("config") or {}, what=f"{path}/config.json")
        policy = Policy.from_dict(cfg.get("policy") or {})
    except (ConfigError, TypeError) as e:
        raise ModelFormatError(f"{path}/config.json: {e}") from None
    representation = None
    if cfg.get("representation") is not None:
        try:
            representation = load_representation(_inside(path, "representation.json"), str(cfg["representation"]))
        except (ValueError, KeyError) as e:
            raise ModelFormatError(f"{path}/representation.json: {e}") from None
    nested_dirs = cfg.get("nested") or {}
    if not isinstance(nested_dirs, dict) or set(nested_dirs) != set(cls.nested):
        raise ModelFormatError(f"{path}/config.json: a {cls.name} holds nested models {list(cls.nested)}, "
                               f"the file lists {nested_dirs!r}")
    nested = {}
    for name, sub in nested_dirs.items():
        sub_path = (path / str(sub)).resolve()
        if path.resolve() not in sub_path.parents:
            raise ModelFormatError(f"{path}/config.json: nested model path {sub!r} leaves the model directory")
        _inside(path, str(sub))
        nested[name] = load_pretrained(sub_path, map_location)
    model = cls.from_config(config, representation=representation, policy=policy, **nested)  # components built
    wfile = path / "model.safetensors"
    if wfile.exists():
        _inside(path, "model.safetensors")
    if not wfile.exists():
        raise ModelFormatError(f"{path}: model.safetensors is missing")
    try:
        state = load_file(str(wfile), device=map_location)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFormatError(f"{wfile} is corrupt or not a safetensors file: {e}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ModelFormatError(f"{wfile} does not match a {cfg['model']} with this config: "
                               f"{str(e).splitlines()[-1].strip()}") from None
    skip = _nested_prefixes(model)
    missing = [k for k in missing if not k.startswith(skip)]
    if missing or unexpected:
        raise ModelFormatError(f"{wfile} does not match a {cfg['model']} with this config "
                               f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    meta_path = path / "metadata.json"
    model.metadata = _read_json(_inside(path, "metadata.json")) if meta_path.exists() else {}
    model.eval()
    return model
