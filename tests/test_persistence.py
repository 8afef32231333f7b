"""Model directories load safely: corrupt, foreign, old/new and pickled files are clear errors."""

import json
import pickle

import pytest
import torch

from molgen.persistence import ModelFormatError, load_pretrained
from tests.conftest import copy_model


def test_directory_layout_and_metadata(saved):
    names = {p.name for p in saved.iterdir()}
    assert {"config.json", "representation.json", "model.safetensors", "metadata.json"} <= names
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["format"] == "molgen-model" and cfg["model"] == "transformer" and cfg["format_version"] == 2
    assert cfg["likelihood"] == {"kind": "exact", "object": "canonical-smiles", "unit": "nats/molecule"}
    assert cfg["config"]["backbone"]["name"] == "transformer" and cfg["representation"] == "smiles"
    meta = json.loads((saved / "metadata.json").read_text())
    assert meta["data"]["source_hash"] and "rdkit" in meta["versions"] and meta["policy"]["keep_stereo"]
    assert meta["final"]["likelihood"] == cfg["likelihood"] and meta["final"]["val_nll_nats_per_molecule"] > 0


def _with_config(saved, tmp_path, keys: tuple, value):
    """A copy of the saved model with ``config.json[keys...] = value``."""
    d = copy_model(saved, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    node = cfg
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_missing_directory_or_config(tmp_path):
    with pytest.raises(ModelFormatError, match=r"config\.json is missing"):
        load_pretrained(tmp_path)


def test_corrupt_config(saved, tmp_path):
    d = copy_model(saved, tmp_path)
    (d / "config.json").write_text("{oops")
    with pytest.raises(ModelFormatError, match="corrupt"):
        load_pretrained(d)


def test_foreign_config(saved, tmp_path):
    d = copy_model(saved, tmp_path)
    (d / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ModelFormatError, match="not a molgen model config"):
        load_pretrained(d)


def test_newer_format_says_upgrade(saved, tmp_path):
    d = _with_config(saved, tmp_path, ('format_version',), 99)
    with pytest.raises(ModelFormatError, match="upgrade molgen"):
        load_pretrained(d)


def test_unknown_model_family(saved, tmp_path):
    d = _with_config(saved, tmp_path, ('model',), "nosuchmodel")
    with pytest.raises(ModelFormatError, match="unknown model"):
        load_pretrained(d)


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_weights_are_never_unpickled(saved, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = copy_model(saved, tmp_path)
    (d / "model.safetensors").write_bytes(pickle.dumps({"w": _Boom()}))
    with pytest.raises(ModelFormatError, match="corrupt or not a safetensors"):
        load_pretrained(d)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_weights(saved, tmp_path):
    d = copy_model(saved, tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError):
        load_pretrained(d)


def test_weights_of_another_shape(saved, tmp_path):
    from safetensors.torch import save_file

    d = copy_model(saved, tmp_path)
    save_file({"net.tok_emb.weight": torch.zeros(3, 3)}, str(d / "model.safetensors"))
    with pytest.raises(ModelFormatError, match="does not match"):
        load_pretrained(d)


def test_lightning_checkpoint_is_pointed_to_the_model_directory(tmp_path):
    f = tmp_path / "last.ckpt"
    f.write_bytes(b"\x80\x04")
    with pytest.raises(ModelFormatError, match="training checkpoint"):
        load_pretrained(f)


def test_old_format_says_retrain(saved, tmp_path):
    d = _with_config(saved, tmp_path, ('format_version',), 1)
    with pytest.raises(ModelFormatError, match="old model format 1"):
        load_pretrained(d)


def test_unknown_config_option_is_a_format_error(saved, tmp_path):
    d = _with_config(saved, tmp_path, ('config', 'd_model'), 64)
    with pytest.raises(ModelFormatError, match=r"unknown option.*d_model.*accepted: backbone"):
        load_pretrained(d)


def test_nested_path_cannot_leave_the_model_directory(saved, tmp_path):
    d = _with_config(saved, tmp_path, ('nested',), {"inner": "../../elsewhere"})
    with pytest.raises(ModelFormatError, match="nested"):
        load_pretrained(d)
