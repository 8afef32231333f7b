"""One options model per command: a dataclass declares each option once (type, default, help, choices),
and the CLI parser, the YAML validation and the Python defaults are generated from it.

This package stays light (no torch, RDKit or pandas) so ``molgen --help`` builds every parser fast.
"""

from molgen.options.base import (
    OptionSpec,
    add_arguments,
    defaults,
    names,
    option,
    options_from_namespace,
    validate_mapping,
)

__all__ = ["OptionSpec", "add_arguments", "defaults", "names", "option", "options_from_namespace",
           "validate_mapping"]
