"""A quick CLI: building the parser and listing the families import neither torch nor Lightning, and the
static names / table the CLI reads without imports stay equal to what the imported registries hold."""

import subprocess
import sys

import pytest

from molgen import registry


@pytest.mark.parametrize("reg", [registry.MODELS, registry.REPRESENTATIONS, registry.ENCODERS, registry.PRIORS,
                                 registry.BACKBONES, registry.FEATURIZERS], ids=lambda r: r.category)
def test_declared_names_equal_the_imported_registrations(reg):
    assert reg.declared_names() == reg.names(), (
        f"update the declared {reg.category} names in molgen/registry.py")


def test_static_models_table_equals_the_imported_families():
    from molgen.cli.models_table import MODELS_TABLE, current_table

    assert MODELS_TABLE == current_table(), (
        "update molgen/cli/models_table.py (python -m molgen.cli.models_table prints the current table)")


def _heavy_modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(m for m in "
                          "('torch', 'lightning', 'rdkit', 'pandas') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_help_and_model_listing_import_no_torch():
    assert _heavy_modules_after("from molgen.cli.main import build_parser\nbuild_parser()") == []
    code = ("import contextlib, io\nfrom molgen.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as f:\n    assert main(['models']) == 0\n"
            "assert 'transformer' in f.getvalue() and 'iwae-50' in f.getvalue()")
    assert _heavy_modules_after(code) == []
    assert _heavy_modules_after("from molgen.cli.main import build_parser\nbuild_parser('train')") == []


def test_model_listing_names_every_canonical_string_object(capsys):
    from molgen.cli.main import main
    from molgen.likelihood import OBJECTS

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(o in out for o in OBJECTS if o.startswith("canonical-"))
