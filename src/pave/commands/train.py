"""``pave train RECIPE [key=value ...]``: train a patch (and LoRA) from a recipe."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a patch from a recipe (YAML file or bundled recipe name)",
        description=(
            "Train a patch and LoRA adapter on transformers' Trainer. Resumes from the newest checkpoint "
            "in train.output_dir. Runs unchanged under torchrun / accelerate launch."
        ),
        epilog="example: pave train music_avqa_0.5b train.learning_rate=1e-4 train.output_dir=runs/mavqa",
    )
    parser.add_argument("recipe", nargs="?", help="a recipe YAML file or a bundled recipe name")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override recipe values, e.g. lora.r=16")
    parser.add_argument("--list", action="store_true", help="list the bundled recipes and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pave import recipes

    if args.list:
        print("\n".join(recipes.names()))
        return 0
    if not args.recipe:
        raise SystemExit("pave train: give a recipe (a YAML file or one of `pave train --list`)")
    from pave.recipes import load_recipe
    from pave.training.train import train

    recipe = load_recipe(recipes.find(args.recipe), args.overrides)  # fails before any model loads
    out = train(recipe)
    print(f"patch saved in {out}")
    return 0
