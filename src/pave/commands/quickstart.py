"""``pave quickstart``: the whole method end to end on a tiny model and synthetic data."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)
# --base tiny-FAMILY: the tiny built-in base of that family.
TINY = "tiny-"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import add_dtype_argument

    parser = subparsers.add_parser(
        "quickstart",
        help="run PAVE end to end on a tiny built-in model and a synthetic audio-visual benchmark",
        description=(
            "Generate a synthetic audio-visual QA benchmark (real mp4 files), extract its audio side "
            "channel, pre-train (once, cached) a tiny base video LLM on visual questions, then compare "
            "zero-shot, LoRA fine-tuning without audio (FT) and PAVE (patch + LoRA with audio). "
            "--methods adds the paper's ablations and the related systems' adapters."
        ),
    )
    parser.add_argument("--out", default="outputs/quickstart", help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of every run")
    parser.add_argument(
        "--base",
        default=None,
        help=(
            "the base: tiny-FAMILY for the tiny built-in base of a family (default tiny-llava-onevision; "
            "tiny-video-llava, tiny-qwen2.5-vl, ...), or a real model id or path"
        ),
    )
    add_dtype_argument(parser)  # the device is the GPU when there is one
    parser.add_argument("--fast", action="store_true", help="a much smaller run (about a minute), for smoke tests")
    parser.add_argument(
        "--methods",
        default="zero-shot,ft,pave",
        help=(
            "comma-separated registered methods, table rows in that order (`pave methods` lists them; "
            "default: %(default)s)"
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transformers import AutoConfig

    from pave.models.families import family_of, get_family
    from pave.models.patched import model_location
    from pave.quickstart import QuickstartSettings, format_table, run

    settings = QuickstartSettings.fast() if args.fast else QuickstartSettings()
    settings.out, settings.seed, settings.base, settings.dtype = args.out, args.seed, args.base, args.dtype
    settings.data.seed = args.seed
    if args.base and args.base.startswith(TINY):
        settings.base, settings.family = None, get_family(args.base[len(TINY) :]).name
    elif args.base:  # a real checkpoint: the paper's patch and LoRA, its family's frames, smaller batches
        frames = family_of(AutoConfig.from_pretrained(model_location(args.base))).default_frames
        settings.configs, settings.lora_r, settings.lora_alpha, settings.num_frames, settings.batch_size = {}, 64, 16, frames, 4
    results = run(settings, methods=[m.strip() for m in args.methods.split(",") if m.strip()])
    print(format_table(results["rows"]))
    print(f"\nresults: {settings.out}/results.json" + (f"   patch: {results['patch_dir']}" if results["patch_dir"] else ""))
    return 0
