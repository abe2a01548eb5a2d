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


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype``, as every command that runs a model takes them (see
    :mod:`pave.models.devices`; its import is deferred so ``--help`` needs no torch)."""
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    add_dtype_argument(parser)


def add_dtype_argument(parser: argparse.ArgumentParser) -> None:
    from pave.names import DTYPE_CHOICES

    parser.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPE_CHOICES,
        help="the base model's dtype (default: auto = bfloat16 on a GPU, float32 on the CPU)",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (frames, batch sizes, tokens)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
