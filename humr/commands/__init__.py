"""Subcommands of the ``humr`` command (see humr/cli.py)."""
