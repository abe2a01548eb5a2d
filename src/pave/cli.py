"""The ``pave`` command: a thin argparse layer over the library.

Each subcommand is one module in :mod:`pave.commands` exposing ``add_parser(subparsers)``, which
registers the subcommand and sets ``func`` (called with the parsed arguments, returning an exit
code). Modules are imported only when listed here, so ``pave --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pave import __version__

# What the library raises for bad input (its own error types derive from these): the command
# line reports them in one line. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError, ImportError, FloatingPointError)

# Subcommand modules under pave.commands, in the order `pave --help` lists them.
COMMANDS = ("quickstart", "train", "eval", "infer", "demo", "extract", "subset", "convert", "score", "ids", "flops", "methods")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pave",
        description="Patch pre-trained video LLMs with side-channel signals (audio, 3D, dense video, multi-view).",
    )
    parser.add_argument("--version", action="version", version=f"pave {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"pave.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        # Bad input, a missing file, a diverged run: one line naming what and where, not a traceback.
        if args.verbose:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        logging.getLogger("pave").error("%s (pave -v %s ... shows the traceback)", message, args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())
