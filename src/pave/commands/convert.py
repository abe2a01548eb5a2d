"""``pave convert``: an authors' released PAVE checkpoint -> a pave patch directory."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import positive_int

    parser = subparsers.add_parser(
        "convert",
        help="convert an authors' released checkpoint (non_lora_trainables.bin + LoRA) into a pave patch",
        description=(
            "Read an authors' training output directory (pickle files, read with "
            "torch.load(weights_only=True)) and write a patch directory that pave eval, infer and demo load."
        ),
        epilog="example: pave convert checkpoints/pave_music_avqa_7b --side-channel audio --out patches/music_avqa_7b",
    )
    parser.add_argument("source", type=Path, help="the authors' checkpoint folder (non_lora_trainables.bin, adapter_*)")
    parser.add_argument("--side-channel", required=True, choices=("audio", "video", "3d", "exo"), help="what the patch reads")
    parser.add_argument("--out", required=True, type=Path, help="the patch directory to write")
    parser.add_argument("--base", help="base model to record (default: the llava-hf checkpoint of the patch's width)")
    parser.add_argument("--num-heads", type=positive_int, default=4, help="attention heads (default: 4, every release)")
    parser.add_argument("--name", help="the patch's name (default: the side channel)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave.convert import convert

    done = convert(args.source, args.out, args.side_channel, base=args.base, num_heads=args.num_heads, name=args.name)
    cfg = done.config
    print(
        f"{done.directory}: {cfg.side_channel} patch, {cfg.num_layers} layers, side {cfg.side_dim}-d, "
        f"for {cfg.base_model}; LoRA on {done.lora_layers} LLM layers"
    )
    return 0
