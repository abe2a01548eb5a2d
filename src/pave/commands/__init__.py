"""Subcommands of the ``pave`` CLI, one module each (see :mod:`pave.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def add_benchmark_arguments(parser: argparse.ArgumentParser, tasks: Sequence[str]) -> None:
    """``--task`` and ``--annotations``, as every command reading a benchmark takes them."""
    parser.add_argument("--task", required=True, choices=tasks)
    parser.add_argument(
        "--annotations",
        required=True,
        nargs="+",
        type=Path,
        metavar="FILE",
        help="the benchmark's official annotation file(s)",
    )
