"""Subcommands of the ``pave`` CLI, one module each (see :mod:`pave.cli`)."""
