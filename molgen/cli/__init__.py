"""Command-line interface: ``molgen <command>``; each command is a module with add_arguments/run."""
