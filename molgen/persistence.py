"""Portable model directories: JSON configs + safetensors weights. Nothing is ever unpickled.

Layout of a model directory::

    config.json      {"format": "molgen-model", "format_version", "model": registry name, "init_args",
                      "likelihood_kind", "capabilities", "molgen_version"}
    tokenizer.json   tokenizer state (vocabulary, OOV policy, settings)
    model.safetensors  weights
    metadata.json    training data hash, standardization policy, versions, dates, final metrics

A missing file, a foreign format or a newer format version is a :class:`ModelFormatError` that says
what to do. Lightning ``.ckpt`` files are for resuming training only; ``molgen export-ckpt`` is not
needed because ``molgen train`` always writes the portable directory as well.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FORMAT = "molgen-model"
FORMAT_VERSION = 1


class ModelFormatError(ValueError):
    """The path is not a (readable, compatible) molgen model directory."""


def versions() -> dict[str, str]:
    """Versions of the packages that change numbers (for metadata and reports)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("molgen", "torch", "lightning", "rdkit", "selfies", "torch_geometric"):
        try:
            out[pkg] = md.version(pkg.replace("_", "-"))
        except md.PackageNotFoundError:
            pass
    return out


def save_pretrained(model, path: str | Path) -> Path:
    from safetensors.torch import save_file

    from molgen._version import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "init_args": model.config(),
        "policy": model.policy.to_dict(),
        "likelihood_kind": model.likelihood_kind,
        "capabilities": sorted(model.capabilities),
        "molgen_version": __version__,
    }
    (path / "config.json").write_text(json.dumps(config, indent=1))
    model.tokenizer.save(path / "tokenizer.json")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"), metadata={"format": FORMAT})
    meta = {**model.metadata, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "policy": model.policy.to_dict()}
    (path / "metadata.json").write_text(json.dumps(meta, indent=1, default=str))
    return path


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
    cfg = _read_json(path / "config.json")
    if cfg.get("format") != FORMAT:
        raise ModelFormatError(f"{path}/config.json is not a molgen model config (format "
                               f"{cfg.get('format')!r}); a Hugging Face or foreign config cannot be loaded")
    if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFormatError(f"{path} was written by a newer molgen (format {cfg['format_version']} > "
                               f"{FORMAT_VERSION}); upgrade molgen to load it")
    return cfg


def load_pretrained(path: str | Path, map_location: str = "cpu"):
    """Rebuild a model from its directory; weights are read with safetensors (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from molgen.chem import Policy
    from molgen.registry import MODELS
    from molgen.tokenizers.base import load_tokenizer

    path = Path(path)
    cfg = read_config(path)
    try:
        cls = MODELS.get(cfg["model"])
    except KeyError as e:
        raise ModelFormatError(str(e)) from None
    try:
        tokenizer = load_tokenizer(path / "tokenizer.json")
    except (ValueError, KeyError) as e:
        raise ModelFormatError(f"{path}/tokenizer.json: {e}") from None
    model = cls(tokenizer, Policy.from_dict(cfg.get("policy", {})), **cfg.get("init_args", {}))
    wfile = path / "model.safetensors"
    if not wfile.exists():
        raise ModelFormatError(f"{path}: model.safetensors is missing")
    try:
        state = load_file(str(wfile), device=map_location)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFormatError(f"{wfile} is corrupt or not a safetensors file: {e}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ModelFormatError(f"{wfile} does not match a {cfg['model']} with these init_args: "
                               f"{str(e).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise ModelFormatError(f"{wfile} does not match a {cfg['model']} with these init_args "
                               f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    meta_path = path / "metadata.json"
    model.metadata = _read_json(meta_path) if meta_path.exists() else {}
    model.eval()
    return model
