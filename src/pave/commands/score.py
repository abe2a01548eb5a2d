"""``pave score``: score a predictions file with a benchmark's own protocol."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pave.files import write_text

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import add_benchmark_arguments
    from pave.evaluation import SCORABLE_TASKS

    parser = subparsers.add_parser(
        "score",
        help="score a predictions JSONL file against a benchmark's annotation files",
        description=(
            'Score predictions (one {"id": ..., "prediction": ...} object per line) with the '
            "benchmark's own protocol and print the metrics as a markdown table."
        ),
    )
    add_benchmark_arguments(parser, SCORABLE_TASKS)
    parser.add_argument("--predictions", required=True, type=Path, metavar="PRED.jsonl")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--out", type=Path, metavar="METRICS.json", help="also write the result as JSON here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave.data.datasets import AnnotationError, load_samples
    from pave.evaluation import (
        MissingDependencyError,
        PredictionsError,
        format_report,
        read_predictions,
        score,
    )

    try:
        samples = load_samples(args.task, args.annotations)
        result = score(args.task, samples, read_predictions(args.predictions))
    except (AnnotationError, PredictionsError, MissingDependencyError, OSError) as exc:
        logger.error("%s", exc)
        return 1
    if args.out is not None:
        write_text(args.out, json.dumps(result, indent=2) + "\n")
    sys.stdout.write((json.dumps(result) if args.json else format_report(result)) + "\n")
    return 0
