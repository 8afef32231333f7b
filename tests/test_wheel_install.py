"""The wheel works without the checkout: the training configs are package data, so ``molgen train --config
quickstart`` in a fresh install finds the recipe inside the installed package.

Offline throughout: the wheel is built from a copy of the sources with the project venv's pip (no build
isolation, no index), and installed with ``--no-deps --no-index`` into a fresh venv. That venv borrows the
project venv's dependencies through a ``.pth`` line (a directory a ``.pth`` line adds does not get its own
``.pth`` files processed, so the project's editable install of molgen stays off: the test checks that
``molgen`` is imported from the fresh venv). The run starts in a folder outside the repository.

The embedded MOSES data (``data/``, 13 MB of SMILES, hashes and reference statistics) is not package data:
an installed molgen finds it through ``MOLGEN_DATA``, here the checkout's ``data/``. The cache is empty
(a temporary ``MOLGEN_CACHE``), so the run trains on a 2,000-molecule subset: the quick-start's own 600k
subset takes many minutes to standardize and fit a Kekulé vocabulary on from scratch. Everything else is
the packaged config's, with a budget of 64 molecules seen.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the sources (the build writes build/ and egg-info next to them)."""
    src = tmp / "src"
    shutil.copytree(ROOT / "molgen", src / "molgen", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)])
    (wheel,) = dist.glob("molgen-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed, the project venv's packages importable through a .pth line."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # installed before the .pth exists, so pip sees no other molgen (never the project's editable one)
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)])
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                     ).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "project-deps.pth").write_text("".join(f"{p}\n" for p in deps))
    return venv


@pytest.mark.slow
def test_wheel_install_trains_with_the_packaged_quickstart_config(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        assert {"molgen/configs/quickstart.yaml", "molgen/configs/__init__.py"} <= set(z.namelist())
    venv = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "work"  # outside the repository: nothing is found relative to a checkout
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(MOLGEN_DATA=str(ROOT / "data"), MOLGEN_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")

    where = json.loads(_run([str(venv / "bin" / "python"), "-c",
                             "import json, molgen, molgen.configs as c; print(json.dumps([molgen.__file__, "
                             "str(c.resolve_config('quickstart'))]))"], cwd=work, env=env).stdout)
    installed = (venv / "lib").resolve()
    assert Path(where[0]).resolve().is_relative_to(installed), where  # the wheel's molgen, not the checkout's
    assert Path(where[1]).resolve().is_relative_to(installed) and Path(where[1]).name == "quickstart.yaml"

    out = tmp_path / "model"
    run = _run([str(venv / "bin" / "molgen"), "train", "--config", "quickstart", "--max-molecules", "64",
                "--subset", "2000", "--out", str(out), "-q"], cwd=work, env=env, timeout=600)
    summary = json.loads(run.stdout)
    assert summary["model"] == "transformer" and summary["molecules_seen"] >= 64
    assert {"config.json", "model.safetensors", "representation.json", "metadata.json"} <= {
        p.name for p in out.iterdir()}
    options = json.loads((out / "train_options.json").read_text())
    packaged = (ROOT / "molgen" / "configs" / "quickstart.yaml").read_text()
    assert options["description"] in packaged  # the options came from the packaged quickstart config
    assert (options["representation"], options["batch_size"], options["warmup_steps"]) == ("smiles-kekule", 16, 200)
    assert (options["max_molecules"], options["subset"]) == (64, 2000)  # the flags override the config
