"""``pave flops``: prefill FLOPs and parameters of a base model, a method and a side channel."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pave.names import BUNDLED_BASES, FLOPS_DURATION, FLOPS_TEXT_TOKENS, SIDE_CHANNEL_KINDS

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pave.commands import positive_int

    parser = subparsers.add_parser(
        "flops",
        help="prefill TFLOPs and total/trainable parameters, counted as in the paper (Appendix B.5)",
        description=(
            "Prefill TFLOPs of the LLM and of the patch, and total/trainable parameters (LoRA r=64 on "
            "the LLM plus the patch). No weights are needed: models are built on the meta device."
        ),
    )
    parser.add_argument(
        "--base",
        required=True,
        metavar="{" + ",".join(BUNDLED_BASES) + ",PATH}",
        help="a bundled base model, or a transformers config file, model directory or cached model id",
    )
    parser.add_argument(
        "--method", required=True, metavar="METHOD", help="a registered method: base, ft, pave, ... (`pave methods`)"
    )
    parser.add_argument(
        "--side-channel",
        choices=("none", *SIDE_CHANNEL_KINDS),
        default="none",
        help="for methods that read one (`pave methods`): tokens as the paper's encoders give them",
    )
    parser.add_argument(
        "--features",
        metavar="STORE",
        help="a feature store instead of --side-channel: tokens as its first item has them (what a recipe trains on)",
    )
    parser.add_argument(
        "--frames", type=positive_int, help="key frames (default: the base model's, 32 for LLaVA-OneVision)"
    )
    parser.add_argument(
        "--text-tokens", type=int, default=FLOPS_TEXT_TOKENS, help="prompt tokens (default: 40)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=FLOPS_DURATION,
        help="video seconds, for audio and dense video (default: 120)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave import flops

    side = args.side_channel
    if args.features:
        from pave.sidechannels.store import FeatureStore

        store = FeatureStore.existing(args.features, "--features")
        if not len(store):
            raise ValueError(f"{store.path}: the feature store is empty")
        item = store.get(store.ids()[0])
        side = flops.SideLayout.of(item.tokens)
    try:
        result = flops.account(
            args.base,
            args.method,
            side,
            frames=args.frames,
            text_tokens=args.text_tokens,
            duration=args.duration,
        )
    except ValueError as err:
        logger.error("%s", err)
        return 1
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        label = " ".join([result.base, result.method] + ([result.side_channel] if result.side_channel != "none" else []))
        sys.stdout.write(flops.format_table([(label, result)]) + "\n")
    return 0
