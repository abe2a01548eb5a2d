"""``pave demo``: a Gradio app to try patches on uploaded videos (needs the ``demo`` extra)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

QUICKSTART_OUT = Path("outputs/quickstart")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import add_device_arguments, positive_int

    parser = subparsers.add_parser(
        "demo",
        help="a local web app (Gradio): upload a video, pick patches, ask, see the answer and the heatmap",
        description=(
            "Serve the demo on HOST:PORT. Patches come from --patch and from the patch directories found "
            f"under --patches. With neither, the quickstart's patch in {QUICKSTART_OUT} is used, and the "
            "quickstart is run first when it is not there yet (a while on a CPU)."
        ),
    )
    parser.add_argument(
        "--patch", action="append", default=[], type=Path, metavar="DIR", help="a saved patch (repeatable)"
    )
    parser.add_argument(
        "--patches", type=Path, metavar="FOLDER", help="offer every patch directory under FOLDER"
    )
    parser.add_argument(
        "--base", metavar="ID_OR_PATH", help="base model (default: the one each patch records)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: %(default)s, this machine only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=64)
    parser.add_argument(
        "--examples",
        type=Path,
        metavar="QUESTIONS.jsonl",
        help='example inputs shown under the form: lines {"video", "question"} (paths relative to the file; '
        "default with the quickstart's patch: a few of its test questions)",
    )
    add_device_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave.app import launch, require_gradio
    from pave.inference import find_patches, read_questions

    try:
        require_gradio()
    except ImportError as exc:
        logger.error("%s", exc)
        return 1
    patches = list(args.patch) + (find_patches(args.patches) if args.patches else [])
    if args.patches and not patches[len(args.patch) :]:
        logger.error("no patch directory (with patch_config.json) under %s", args.patches)
        return 1
    examples = []
    if args.examples is not None:
        examples = [(q.video, q.question) for q in read_questions(args.examples)]
    if not patches:
        patches = _quickstart_patches()
        examples = examples or quickstart_examples(QUICKSTART_OUT / "data")
    launch(
        patches,
        host=args.host,
        port=args.port,
        base=args.base,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
        examples=examples,
    )
    return 0


def quickstart_examples(data: Path, count: int = 3) -> list[tuple[Path, str]]:
    """One question of each kind about the quickstart's first test videos."""
    from pave.data.datasets import load_samples

    samples = load_samples("music_avqa", [data / "avqa-test.json"])
    picked = {}
    for sample in samples:
        picked.setdefault(sample.groups["modality"], (data / sample.video, sample.question))
    return list(picked.values())[:count]


def _quickstart_patches() -> list[Path]:
    from pave.inference import find_patches

    found = find_patches(QUICKSTART_OUT) if QUICKSTART_OUT.is_dir() else []
    if not found:
        from pave.quickstart import QuickstartSettings
        from pave.quickstart import run as quickstart

        logger.info(
            "no patch given and none in %s: running `pave quickstart` first (a while on a CPU; "
            "`pave demo --patch DIR` skips this)",
            QUICKSTART_OUT,
        )
        found = [Path(quickstart(QuickstartSettings(out=str(QUICKSTART_OUT)))["patch_dir"])]
    logger.info("using the quickstart patch %s; its test videos are in %s", found[0], QUICKSTART_OUT / "data")
    return found
