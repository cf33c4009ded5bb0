"""Subcommands of the ``analysis`` command, one module each."""
