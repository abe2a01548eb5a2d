"""``pave infer``: answer questions about a video with saved patches, streaming the answer."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

# How each side channel is given on the command line, for error messages.
SIDE_OPTIONS = {
    "audio": "--audio FILE (default: the video's own audio track)",
    "video": "the video itself (dense frames)",
    "3d": "--scan DIR",
    "exo": "--exo FILE [FILE ...]",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import add_device_arguments, positive_int

    parser = subparsers.add_parser(
        "infer",
        help="answer questions about a video with one or more saved patches",
        description=(
            "Decode the video, get each patch's side channel (encoded with the encoder the patch was "
            "trained on, or read from extracted features) and answer, streaming the tokens. Audio and "
            "dense video come from the video file itself unless given."
        ),
        epilog=(
            'example: pave infer --patch outputs/quickstart/pave --video clip.mp4 --question "What do you hear?" '
            "--heatmap attention.png"
        ),
    )
    parser.add_argument(
        "--patch", action="append", default=[], metavar="DIR", help="a saved patch (repeat to stack); none: the base alone"
    )
    parser.add_argument(
        "--base", metavar="ID_OR_PATH", help="base model (default: the one the first patch records)"
    )
    parser.add_argument("--video", type=Path, help="the video file (or scan folder, for 3D QA)")
    parser.add_argument("--question", help="the question to answer")
    parser.add_argument(
        "--batch",
        type=Path,
        metavar="QUESTIONS.jsonl",
        help='answer every line {"video", "question", optional "id", "audio", "scan", "exo", "side", "side_id"}; '
        "paths relative to the file",
    )
    side = parser.add_argument_group("side channels (only those the patches read and the video lacks)")
    side.add_argument(
        "--audio", type=Path, metavar="FILE", help="audio (or video) file for the audio channel"
    )
    side.add_argument("--scan", type=Path, metavar="DIR", help="RGB-D scan folder for the 3d channel")
    side.add_argument(
        "--exo", type=Path, nargs="+", metavar="FILE", help="exo-view videos for the exo channel"
    )
    side.add_argument(
        "--side",
        type=Path,
        action="append",
        default=[],
        metavar="FEATURES",
        help="extracted features: an item file of a feature store, or a store folder with --side-id (repeatable)",
    )
    side.add_argument("--side-id", metavar="ID", help="item id in the --side feature store(s)")
    parser.add_argument("--frames", type=positive_int, help="key frames (default: as the patch was trained, else 32)")
    parser.add_argument("--system-prompt", help="system message (default: as the patch was trained)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=64)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per question instead of streaming"
    )
    parser.add_argument(
        "--heatmap",
        type=Path,
        metavar="OUT.png",
        help="also save the patch's cross-attention heatmap (with --batch: OUT-<line>.png per question)",
    )
    parser.add_argument(
        "--heatmap-frame", type=int, metavar="N", help="key frame of the heatmap (default: the middle one)"
    )
    add_device_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave.data.media import MediaError
    from pave.inference import MissingSideChannel, Question, load_for_inference, read_questions, side_signals

    single = args.video is not None and args.question is not None
    if single == (args.batch is not None) or (args.batch is not None and (args.video or args.question)):
        raise SystemExit("pave infer: give --video and --question, or --batch QUESTIONS.jsonl")
    if not args.patch and not args.base:
        raise SystemExit("pave infer: give --patch DIR (one or more) or --base MODEL")
    try:
        if args.batch is not None:
            questions = read_questions(args.batch)
            if not questions:
                raise ValueError(f"{args.batch}: no questions in the file")
        else:
            side = side_signals(args.audio, args.scan, args.exo, args.side, args.side_id)
            questions = [Question(args.video, args.question, side)]
        answerer = load_for_inference(
            args.patch,
            base=args.base,
            num_frames=args.frames,
            system_prompt=args.system_prompt,
            device=args.device,
            dtype=args.dtype,
        )
    except (MediaError, ValueError, FileNotFoundError, KeyError, ImportError) as exc:
        logger.error("%s", exc)
        return 1
    inputs, key, failed = None, None, 0
    for number, q in enumerate(questions, 1):
        # Consecutive questions about one video with the same side signals share its encoding.
        signals = [(k, str(v) if isinstance(v, (str, Path, list)) else id(v)) for k, v in sorted(q.side.items())]
        try:
            if key != (q.video, signals):
                inputs, key = answerer.prepare(q.video, q.side), (q.video, signals)
            _answer(answerer, inputs, q, args, number if args.batch else None)
        except (MissingSideChannel, MediaError, ValueError, FileNotFoundError, KeyError) as exc:
            message = str(exc)
            if isinstance(exc, MissingSideChannel):
                message += f" (on the command line: {SIDE_OPTIONS.get(exc.channel, '--side')} or --side FEATURES)"
            if args.batch is None:  # one question: its error is the command's
                logger.error("%s", message)
                return 2 if isinstance(exc, MissingSideChannel) else 1
            failed += 1
            ident = f", id {q.id}" if q.id else ""
            logger.error("%s, question %d (%s%s): skipped: %s", args.batch, number, q.video, ident, message)
    if failed:
        logger.error("answered %d of %d questions; %d skipped (see above)", len(questions) - failed, len(questions), failed)
    return 1 if failed == len(questions) else 0


def _answer(answerer, inputs, q, args: argparse.Namespace, number: int | None) -> None:
    start = time.perf_counter()
    if args.json:
        text = answerer.answer(inputs, q.question, args.max_new_tokens)
    else:
        if number is not None:
            sys.stdout.write(f"[{number}] {q.video.name}: {q.question}\n")
        pieces = []
        for piece in answerer.stream(inputs, q.question, args.max_new_tokens):
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        text = "".join(pieces).strip()
    seconds = time.perf_counter() - start
    heatmap = None
    if args.heatmap is not None:
        path = (
            args.heatmap
            if number is None
            else args.heatmap.with_name(f"{args.heatmap.stem}-{number:04d}.png")
        )
        heatmap = answerer.save_heatmap(inputs, path, key_frame=args.heatmap_frame)
        logger.info("heatmap: %s", heatmap)
    if args.json:
        record = {
            "id": q.id,
            "video": str(q.video),
            "question": q.question,
            "answer": text,
            "patches": answerer.model.active_patches,
            "side": inputs.sources,
            "seconds": round(seconds, 3),
            "heatmap": None if heatmap is None else str(heatmap),
        }
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
