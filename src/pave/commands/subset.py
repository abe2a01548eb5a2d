"""``pave subset``: write the training subset a paper recipe trains on, from the official files."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import add_benchmark_arguments, positive_int

    parser = subparsers.add_parser(
        "subset",
        help="write a paper recipe's training subset (LLaVA-Video-178K: two QA per video over a minute)",
        epilog=(
            "example: pave subset --task llava_video --annotations data/llava-video/*_m_*/*_oe_v0_1_qa_processed.json "
            "--out data/llava-video/subset.json"
        ),
    )
    add_benchmark_arguments(parser, ("llava_video",))
    parser.add_argument("--out", required=True, type=Path, help="the subset's annotation file (JSON)")
    parser.add_argument("--per-video", type=positive_int, default=2, help="records kept per video (default: 2, the authors')")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave.data.datasets.llava_video import training_subset
    from pave.files import write_text

    records = training_subset(args.annotations, per_video=args.per_video)
    if not records:
        raise ValueError(f"no record of a video over one minute (buckets 1_2_m, 2_3_m) in {len(args.annotations)} file(s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(records, ensure_ascii=False) + "\n")
    videos = len({r["id"] for r in records})
    logger.info("%s: %d records of %d videos", args.out, len(records), videos)
    return 0
