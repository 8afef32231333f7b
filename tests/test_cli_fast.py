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


def test_parsers_import_no_numpy_and_every_command_has_an_options_model():
    """Every command's parser is generated from ``molgen.options.<command>`` (a dataclass or, for ``data``,
    its actions), and building all of them imports no numpy either (``molgen --help`` stays fast)."""
    import importlib

    from molgen.cli.main import COMMANDS

    assert _heavy_modules_after("from molgen.cli.main import build_parser\nbuild_parser()\n"
                                "import sys\nassert 'numpy' not in sys.modules, 'numpy'") == []
    for name in COMMANDS:
        module = importlib.import_module(f"molgen.options.{name}")
        assert module.OPTIONS is not None or hasattr(module, "customize"), name


def test_sample_help_states_the_extrapolation_limit_the_check_uses():
    from molgen.conditioning import EXTRAPOLATION_SD
    from molgen.options.sample import EXTRAPOLATION_SD_IN_HELP

    assert EXTRAPOLATION_SD_IN_HELP == EXTRAPOLATION_SD, "update EXTRAPOLATION_SD_IN_HELP in molgen/options/sample.py"


def test_options_models_parse_as_the_commands_did():
    """Commands without a config layer parse a flag not given as its declared default."""
    from molgen.cli.main import build_parser

    args = build_parser("sample").parse_args(["sample", "--model", "m", "-n", "3", "-o", "x.smi"])
    assert (args.n, args.temperature, args.batch_size, args.device, args.devices, args.extrapolate) == \
        (3, 1.0, 1024, "cpu", 1, False)
    assert args.seed is None and args.condition is None and args.guidance is None and args.shards is None
    args = build_parser("filter").parse_args(["filter", "in.smi", "-o", "o.csv", "--rule", "veber", "--qed-min", "0.5"])
    assert args.alerts == "mcf,pains" and args.rule == ["veber"] and args.qed_min == 0.5 and args.qed_max is None
    args = build_parser("data").parse_args(["data", "get", "moses:train", "guacamol:train", "-q"])
    assert args.action == "get" and args.names == ["moses:train", "guacamol:train"] and args.quiet
    args = build_parser("score").parse_args(["score", "lib.smi", "--model", "m", "-o", "s.csv", "--neutralize"])
    assert args.input == "lib.smi" and args.neutralize and not args.strip_stereo and args.chunk_size == 20_000
