"""``pave ids``: print the sample ids a benchmark loader assigns, one per line."""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import add_benchmark_arguments
    from pave.data.datasets import TASKS

    parser = subparsers.add_parser(
        "ids",
        help="print the sample ids a benchmark's annotation files get (the ids predictions must use)",
    )
    add_benchmark_arguments(parser, TASKS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave.data.datasets import AnnotationError, load_samples

    try:
        samples = load_samples(args.task, args.annotations)
    except (AnnotationError, OSError) as exc:
        logger.error("%s", exc)
        return 1
    sys.stdout.write("".join(f"{sample.id}\n" for sample in samples))
    return 0
