"""``pave eval``: answer a benchmark with a base model or saved patches, then score it."""

from __future__ import annotations

import argparse
import logging


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import add_benchmark_arguments, add_device_arguments, positive_int
    from pave.evaluation import SCORABLE_TASKS  # not llava_video: training data, nothing to score

    parser = subparsers.add_parser(
        "eval",
        help="generate answers for a benchmark (resumable) and score them with its own protocol",
        epilog=(
            "example: pave eval --task music_avqa --annotations avqa-test.json --media-root data/music-avqa "
            "--patch outputs/music_avqa_7b --features audio=features/music-avqa-audio --out eval/mavqa"
        ),
    )
    add_benchmark_arguments(parser, SCORABLE_TASKS)
    parser.add_argument("--media-root", required=True, help="folder the annotations' media paths are relative to")
    parser.add_argument("--patch", action="append", default=[], help="a saved patch directory (repeat to stack)")
    parser.add_argument("--base", help="base model id or path (default: the one the first patch records)")
    parser.add_argument(
        "--features", action="append", default=[], metavar="NAME=STORE",
        help="feature store of a side channel, e.g. audio=features/avsd-audio (repeat per channel)",
    )
    parser.add_argument("--out", required=True, help="folder for predictions.jsonl, metrics.json and metrics.md")
    parser.add_argument(
        "--frames", type=positive_int, help="key frames per video (default: as the patch was trained, else 32)"
    )
    parser.add_argument("--system-prompt", help="system message (default: as the patch was trained)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument(
        "--max-new-tokens", type=positive_int, help="generation length (default: the task protocol's, e.g. 16 for VideoMME)"
    )
    parser.add_argument("--cache-visual-tokens", action="store_true", help="cache the vision tower's tokens in OUT")
    parser.add_argument(
        "--restart", action="store_true",
        help="discard predictions already in OUT (without it, a run resumes them if the same model and settings made them)",
    )
    add_device_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pave.evaluation.evaluate import evaluate
    from pave.evaluation.scoring import format_report
    from pave.inference import load_for_inference

    features = dict(_pair(item) for item in args.features)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SystemExit(f"pave eval: --out {args.out} is a file; give a folder for predictions and metrics")
    if not args.patch and not args.base:
        raise SystemExit("pave eval: give --patch DIR (one or more) or --base MODEL")
    # Frames and system prompt default to those the patch was trained with (its recipe.yaml).
    loaded = load_for_inference(
        args.patch, base=args.base, num_frames=args.frames, system_prompt=args.system_prompt,
        device=args.device, dtype=args.dtype,
    )
    # Predictions made by another run (StalePredictionsError) end here with the CLI's one-line message.
    report = evaluate(
        loaded.model, loaded.processor, args.task, args.annotations, args.media_root, args.out, features,
        num_frames=loaded.num_frames, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        visual_cache=Path(args.out) / "visual-cache" if args.cache_visual_tokens else None,
        restart=args.restart,
    )
    print(format_report(report))
    if not report["counts"]["scored"]:
        logging.getLogger("pave.eval").error("nothing could be scored (%d samples)", report["counts"]["samples"])
        return 1
    return 0


def _pair(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"pave eval: --features takes NAME=STORE, got {item!r}")
    return name, path
