"""Command-line interface: ``molgen <command>``. A command's options are declared in
``molgen.options.<command>`` (the parser is generated from them); ``molgen.cli.<command>`` runs it
(``run(args) -> int``) and is imported only when the command runs (:mod:`molgen.cli.main`)."""
