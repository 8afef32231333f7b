"""``molgen`` entry point: parses arguments, sets up logging, dispatches to a command module.

Each command ``NAME`` has two modules:

- ``molgen.options.NAME`` declares its options once (``OPTIONS``, a dataclass of
  :func:`molgen.options.option` fields, plus an optional ``customize(parser)`` for what a dataclass cannot
  express); the parser is generated from it. These modules are light (no torch, RDKit, pandas or numpy),
  so ``molgen --help`` builds every parser fast.
- ``molgen.cli.NAME`` runs it (``run(args) -> int``) and imports what it needs at its top.

The lazy boundary: the command's ``molgen.cli.NAME`` module is imported only when that command runs
(:func:`main`), so ``molgen --help`` or ``molgen models`` import no torch. ``main(argv)`` can be called
in-process (tests do).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Callable

from molgen._version import __version__
from molgen.options import add_arguments
from molgen.progress import set_quiet

# command name -> (module that runs it, one-line help); its options: molgen.options.<name>
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("molgen.cli.train", "train a generator on a SMILES dataset"),
    "sample": ("molgen.cli.sample", "sample molecules from a trained model"),
    "score": ("molgen.cli.score", "score a compound library by per-molecule log-likelihood"),
    "finetune": ("molgen.cli.finetune", "fine-tune a trained model on a focused set (e.g. your actives)"),
    "filter": ("molgen.cli.filter", "filter molecules (validity, novelty, alerts, property ranges, rules)"),
    "evaluate": ("molgen.cli.evaluate", "evaluate a file of SMILES with the MOSES/GuacaMol metrics"),
    "models": ("molgen.cli.models", "list the registered generator families"),
    "info": ("molgen.cli.info", "describe a saved model directory"),
    "data": ("molgen.cli.data", "the dataset catalog: list, download and verify (MOSES, GuacaMol, ZINC250k)"),
    "pretrained": ("molgen.cli.pretrained", "list the pretrained models that ship with molgen (load them by name)"),
    "quickstart": ("molgen.cli.quickstart", "train the quick-start model, sample it and evaluate it"),
    "benchmark": ("molgen.cli.benchmark", "train every family on the same data and budget, write the comparison table"),
}


def add_command_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add ``command``'s options to ``parser``, generated from ``molgen.options.<command>``."""
    options = importlib.import_module(f"molgen.options.{command}")
    if options.OPTIONS is not None:
        add_arguments(parser, options.OPTIONS)
    customize = getattr(options, "customize", None)
    if customize is not None:
        customize(parser)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``-v`` / ``-q``, which every command takes."""
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars")


def command_parser(command: str, *, prog: str | None = None) -> argparse.ArgumentParser:
    """One command's parser on its own (``python -m molgen.cli.evaluate``, ``benchmarks/compare.py``): the
    common flags and the command's options, as ``molgen COMMAND`` parses them."""
    parser = argparse.ArgumentParser(prog=prog or f"molgen {command}", description=COMMANDS[command][1])
    add_common_arguments(parser)
    add_command_arguments(parser, command)
    return parser


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that command's options are built, so ``molgen sample ...``
    does not read what ``molgen train`` declares."""
    parser = argparse.ArgumentParser(prog="molgen", description="Molecular generative modelling.")
    parser.add_argument("--version", action="version", version=f"molgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add_common_arguments(p)
        if only is None or only == name:
            add_command_arguments(p, name)
    return parser


def setup_logging(verbose: int, quiet: bool) -> None:
    """Log level from ``-v`` / ``-q``, progress bars off with ``-q``, one-line user warnings."""
    set_quiet(quiet)
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    # Lightning is chatty at INFO (tips, accelerator lines); keep it at WARNING unless -vv.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.INFO if verbose > 1 else logging.WARNING)
    if verbose < 2:
        # a user warning (a condition outside the training range) is one line, not a source listing
        warnings.formatwarning = lambda message, category, *a, **k: f"molgen: warning: {message}\n"
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")


def main(argv: list[str] | None = None) -> int:
    """Run ``molgen ARGV``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    setup_logging(args.verbose, args.quiet)
    module = importlib.import_module(COMMANDS[args.command][0])  # the lazy boundary: only the command run
    return run_guarded(lambda: module.run(args), args, f"molgen {args.command}")


def run_guarded(call: Callable[[], int | None], args: argparse.Namespace, prog: str) -> int:
    """Run a command: expected user errors become one line on stderr (exit 2), not a traceback."""
    try:
        _check_device(args)
        return int(call() or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `molgen data list | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError, KeyError, NotImplementedError, FloatingPointError) as e:
        # Expected user errors (bad path, corrupt model, unknown option, a full or unwritable disk, a
        # NaN loss that stopped training and names its checkpoint): one clear line, no traceback.
        if args.verbose > 1:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2


def _check_device(args: argparse.Namespace) -> None:
    """``--device cuda`` / ``--accelerator gpu`` on a machine without CUDA: one clear line, not a trace."""
    dev = str(getattr(args, "device", None) or "")
    acc = str(getattr(args, "accelerator", None) or "")
    if dev.startswith("cuda") or acc in ("gpu", "cuda"):
        import torch  # lazy: third-party and heavy; only when a CUDA device is asked for

        if not torch.cuda.is_available():
            flag = f"--device {dev}" if dev.startswith("cuda") else f"--accelerator {acc}"
            raise ValueError(f"{flag}: no CUDA device is available on this machine (torch {torch.__version__}, "
                             f"built {'with' if torch.backends.cuda.is_built() else 'without'} CUDA); "
                             "use --device cpu / --accelerator cpu")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
