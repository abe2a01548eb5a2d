"""`train(recipe)`: config -> base model -> patches + LoRA -> data -> Trainer -> saved patch."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import yaml
from transformers import AutoTokenizer, set_seed
from transformers.trainer_utils import get_last_checkpoint

from pave.data.datasets.base import load_samples
from pave.models.patched import LORA_CONFIG_NAME, PatchedModel
from pave.models.preprocess import VideoPreprocessor
from pave.models.processor import VideoChatProcessor
from pave.sidechannels.store import FeatureStore
from pave.training.data import QACollator, QADataset, VisualTokenCache, store_source
from pave.training.recipe import Recipe
from pave.training.trainer import PatchTrainer, bf16_available, training_arguments

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if bf16_available() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"model.dtype must be auto or one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def build_model(recipe: Recipe) -> tuple[PatchedModel, VideoChatProcessor]:
    """The base with frozen earlier patches, LoRA and the new patch, and its processor."""
    model = PatchedModel.from_base(recipe.model.base, dtype=resolve_dtype(recipe.model.dtype))
    for directory in recipe.patch.init_patches:
        model.load_patch(directory, trainable=False)
    # Stage-wise training continues the LoRA trained with the earlier patches, if any.
    init_lora = [d for d in recipe.patch.init_patches if (Path(d) / LORA_CONFIG_NAME).exists()]
    if init_lora and recipe.lora.enabled:
        model.load_lora(init_lora[-1], trainable=True)
    elif recipe.lora.enabled:
        model.add_lora(r=recipe.lora.r, alpha=recipe.lora.alpha, dropout=recipe.lora.dropout)
    if recipe.patch.method == "pave":
        channel = recipe.patch.side_channel
        if channel not in recipe.data.features:
            raise ValueError(f"patch.side_channel={channel!r} has no feature store in data.features")
        store = FeatureStore(recipe.data.features[channel])
        if not len(store):
            raise ValueError(f"{store.path}: the feature store is empty; run `pave extract` first")
        first = store.get(store.ids()[0])
        config = model.patch_config(
            side_dim=first.dim,
            side_channel=channel,
            side_grid=first.grid,
            side_encoder=first.encoder,
            **recipe.patch.config,
        )
        model.add_patch(recipe.patch.name or channel, config)
    elif recipe.patch.method != "ft":
        raise ValueError(f"patch.method must be pave or ft, got {recipe.patch.method!r}")
    tokenizer = AutoTokenizer.from_pretrained(recipe.model.base)
    try:
        preprocessor = VideoPreprocessor.from_pretrained(recipe.model.base)
    except OSError:
        preprocessor = None  # the processor falls back to the vision tower's input size
    processor = VideoChatProcessor(tokenizer, model.config, preprocessor, recipe.data.system_prompt)
    return model, processor


def train(recipe: Recipe) -> Path:
    """Run a recipe; resume from the newest checkpoint in ``train.output_dir`` if there is one.

    Returns the output directory, which then holds the trained patch (and LoRA adapter).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    args = training_arguments(recipe.train, world_size)
    set_seed(recipe.train.seed)
    model, processor = build_model(recipe)
    trainable = sum(p.numel() for p in model.trainable_parameters())
    total = sum(p.numel() for p in model.parameters())
    logger.info("trainable parameters: %s of %s (%.3f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)

    samples = load_samples(recipe.data.task, recipe.data.annotations)
    if recipe.data.limit is not None:
        samples = samples[: recipe.data.limit]
    channels = {model.patches[n].config.side_channel or n for n in model.active_patches}
    missing = sorted(channels - set(recipe.data.features))
    if missing:
        raise ValueError(f"data.features has no feature store for side channel(s) {missing}")
    sources = {c: store_source(FeatureStore(recipe.data.features[c]), c) for c in channels}
    cache = None
    if recipe.train.cache_visual_tokens:
        model.to(args.device)
        cache_dir = recipe.train.visual_cache_dir or Path(recipe.train.output_dir) / "visual-cache"
        cache = VisualTokenCache(cache_dir, model, processor.preprocessor, recipe.model.num_frames)
    dataset = QADataset(samples, recipe.data.media_root, recipe.model.num_frames, sources, cache)
    if cache is not None:
        with args.main_process_first(desc="visual token cache"):
            cache.build([dataset.video_path(s) for s in samples])

    trainer = PatchTrainer(model=model, args=args, train_dataset=dataset, data_collator=QACollator(processor))
    checkpoint = get_last_checkpoint(recipe.train.output_dir) if Path(recipe.train.output_dir).is_dir() else None
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(recipe.train.output_dir)
    if trainer.args.should_save:
        (Path(recipe.train.output_dir) / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    return Path(recipe.train.output_dir)
