"""``pave extract``: encode side channels offline into a feature store."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.data.datasets.base import TASKS
    from pave.names import SIDE_CHANNEL_KINDS

    parser = subparsers.add_parser(
        "extract",
        help="extract side-channel features (audio, dense video, 3D, exo views) into a feature store",
        description=(
            "Encode every item of --inputs into STORE_DIR, one safetensors file per item. "
            "Items already in the store are skipped, so rerunning resumes an interrupted run."
        ),
    )
    parser.add_argument("kind", choices=SIDE_CHANNEL_KINDS, help="side channel to extract")
    parser.add_argument(
        "--inputs",
        required=True,
        metavar="FOLDER|LIST.txt|ANNOTATION.json",
        help="a folder of media, a list of paths (one per line), or a benchmark annotation file",
    )
    parser.add_argument("--out", required=True, metavar="STORE_DIR", help="feature store to create or resume")
    parser.add_argument(
        "--model", metavar="ID_OR_PATH", help="base model whose vision tower encodes video, 3d and exo"
    )
    parser.add_argument(
        "--backend",
        default="builtin",
        choices=("builtin", "imagebind", "languagebind", "llava3d", "released"),
        help="encoder back-end (default: builtin, no extra weights); released: import the authors' .pt feature files",
    )
    parser.add_argument("--weights", metavar="FILE", help="weights file of an optional back-end (imagebind)")
    parser.add_argument(
        "--media-root", metavar="FOLDER", help="folder that annotation media paths are relative to"
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        help="read --inputs as this benchmark's annotation file (or `qa`): its loader finds the media "
        "(Music-AVQA's Real/Synthetic folders, Ego-Exo4D's 448-px views) and names the items as "
        "training and `pave eval` look them up",
    )
    parser.add_argument("--device", help="torch device for the encoder (default: cpu)")
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="items encoded in parallel (threads)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave.sidechannels.extract import extract

    options = {k: getattr(args, k) for k in ("model", "weights", "device") if getattr(args, k) is not None}
    if args.kind != "audio" and args.backend == "builtin" and "model" not in options:
        logger.error(
            "pave extract %s needs --model (the base model whose vision tower encodes frames)", args.kind
        )
        return 2
    summary = extract(
        args.kind,
        args.inputs,
        args.out,
        backend=args.backend,
        workers=args.workers,
        media_root=args.media_root,
        task=args.task,
        **options,
    )
    logger.info(
        "%d items: %d extracted, %d already there, %d failed (%.1fs); store: %s",
        summary.total,
        summary.extracted,
        summary.skipped,
        len(summary.failed),
        summary.seconds,
        args.out,
    )
    for item_id, message in sorted(summary.failed.items()):
        logger.error("failed %s: %s", item_id, message)
    if summary.total == 0:
        logger.error("no items found in %s", args.inputs)
        return 1
    return 1 if summary.failed and summary.extracted + summary.skipped == 0 else 0
