"""`train(recipe)`: config -> base model -> patches + LoRA -> data -> Trainer -> saved patch."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import yaml
from transformers import set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from pave.adapters.base import NEWLINE_POSITIONS
from pave.batching import QACollator, QADataset, VisualTokenCache, repeat_samples, store_source
from pave.data.datasets.base import load_samples
from pave.files import write_text
from pave.methods import SideLayout, get_method, kind_of, methods
from pave.models.devices import resolve_dtype
from pave.models.patch_dir import (
    LORA_CONFIG_NAME,
    PATCH_CONFIG_NAME,
    read_patch_config,
    recorded_newline_position,
)
from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor
from pave.recipes import Recipe
from pave.sidechannels.store import FeatureStore
from pave.training.trainer import PatchTrainer, training_arguments

logger = logging.getLogger(__name__)

def build_model(recipe: Recipe) -> tuple[PatchedModel, VideoChatProcessor]:
    """The base with frozen earlier patches, LoRA and the new patch or adapter, and its processor."""
    method = _trained_method(recipe.patch.method)
    try:
        dtype = resolve_dtype(recipe.model.dtype)
    except ValueError as exc:
        raise ValueError(f"model.dtype: {exc}") from None
    position = recipe.model.newline_position
    if position is not None and position not in NEWLINE_POSITIONS:
        raise ValueError(f"model.newline_position must be one of {NEWLINE_POSITIONS}, got {position!r}")
    model = PatchedModel.from_base(recipe.model.base, dtype=dtype)
    position = position or model.newline_position  # unset: the base family's own
    try:
        model.family.check_newline(position)
    except ValueError as exc:
        raise ValueError(f"model.newline_position: {exc}") from None
    # Patches a run starts from fix the token layout: they were trained on it.
    starts = [*recipe.patch.init_patches, *([recipe.patch.init_from] if recipe.patch.init_from else [])]
    for directory in starts:
        if (Path(directory) / PATCH_CONFIG_NAME).exists() and recorded_newline_position(directory) != position:
            raise ValueError(
                f"{directory} was trained with newline position {recorded_newline_position(directory)!r}; "
                "set model.newline_position to it"
            )
    model.newline_position = position
    # Unset: the base family's own; the recipe saved beside the patch records what was used.
    recipe.model.num_frames = recipe.model.num_frames or model.family.default_frames
    for directory in recipe.patch.init_patches:
        model.load_patch(directory, trainable=False)
    # Stage-wise training continues the LoRA trained with the earlier patches, if any.
    init_lora = [d for d in starts if (Path(d) / LORA_CONFIG_NAME).exists()]
    if init_lora and recipe.lora.enabled:
        model.load_lora(init_lora[-1], trainable=True)
    elif recipe.lora.enabled:
        model.add_lora(r=recipe.lora.r, alpha=recipe.lora.alpha, dropout=recipe.lora.dropout)
    add_method(model, recipe, method)
    return model, VideoChatProcessor.from_pretrained(recipe.model.base, model, recipe.data.system_prompt)


def _trained_method(name: str):
    """The registered method ``patch.method`` names; the frozen base is not trained."""
    try:
        method = get_method(name)
    except ValueError:
        trainable = ", ".join(m.name for m in methods() if m.trains)
        raise ValueError(f"patch.method must be one of {trainable} (pave methods lists them), got {name!r}") from None
    if not method.trains:
        raise ValueError(f"patch.method={name} is the base model alone: there is nothing to train")
    return method


def add_method(model: PatchedModel, recipe: Recipe, method) -> None:
    """Add the trainable patch or adapter of ``method`` (nothing for ``ft``), sized by its kind
    from the base and from the first item of its side channel's feature store."""
    section = recipe.patch
    if method.kind is None:
        return
    if section.init_from:
        if kind_of(read_patch_config(section.init_from)[0]).name != method.kind:
            raise ValueError(f"patch.init_from={section.init_from} does not hold a {method.kind!r} patch")
        if section.config:
            logger.warning("patch.config is ignored: the config comes with patch.init_from")
        model.load_patch(section.init_from, name=section.name, trainable=True)
        return
    channel = section.side_channel
    if method.side == "required" and channel is None:
        raise ValueError(f"patch.method={section.method} needs patch.side_channel")
    uses_side = method.side != "none" and channel is not None
    settings = dict(method.settings) | section.config
    side = None
    if uses_side:
        first = _first_side_item(recipe, channel)
        side = SideLayout.of(first.tokens)
        settings = {"side_channel": channel, "side_encoder": first.encoder} | settings
    config = model.new_config(method.kind, side, key_frames=recipe.model.num_frames, **settings)
    model.add_patch(section.name or (channel if uses_side else section.method), config)


def _first_side_item(recipe: Recipe, channel: str):
    if channel not in recipe.data.features:
        raise ValueError(f"patch.side_channel={channel!r} has no feature store in data.features")
    store = FeatureStore.existing(recipe.data.features[channel], f"data.features.{channel}")
    if not len(store):
        raise ValueError(f"{store.path}: the feature store is empty; run `pave extract` first")
    return store.get(store.ids()[0])


def _samples(recipe: Recipe, annotations) -> list:
    samples = load_samples(recipe.data.task, annotations)
    return samples if recipe.data.limit is None else samples[: recipe.data.limit]


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint the Trainer finished writing: it writes ``trainer_state.json``
    last, and not atomically, so one killed while saving (no state, or a torn one) is passed
    over and the run resumes from the previous one."""
    folder = Path(output_dir)
    steps = []
    for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if folder.is_dir() else ():
        suffix = path.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and _readable_json(path / "trainer_state.json"):
            steps.append((int(suffix), path))
    return str(max(steps)[1]) if steps else None


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def train(recipe: Recipe) -> Path:
    """Run a recipe; resume from the newest checkpoint in ``train.output_dir`` if there is one.

    Returns the output directory, which then holds the trained patch (and LoRA adapter).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    args = training_arguments(recipe.train, world_size, validation=bool(recipe.data.validation))
    set_seed(recipe.train.seed)
    # The data first: a wrong task or annotation file fails in a second, not after the base loads.
    samples = repeat_samples(_samples(recipe, recipe.data.annotations), recipe.data.repeat)
    if recipe.data.repeat:
        logger.info("data.repeat: %d training samples after the mix", len(samples))
    model, processor = build_model(recipe)
    trainable = sum(p.numel() for p in model.trainable_parameters())
    total = sum(p.numel() for p in model.parameters())
    logger.info("trainable parameters: %s of %s (%.3f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)

    channels = set(model.side_channels)
    missing = sorted(channels - set(recipe.data.features))
    if missing:
        raise ValueError(f"data.features has no feature store for side channel(s) {missing}")
    sources = {c: store_source(FeatureStore.existing(recipe.data.features[c], f"data.features.{c}"), c) for c in channels}
    cache = None
    if recipe.train.cache_visual_tokens:
        model.to(args.device)
        cache_dir = recipe.train.visual_cache_dir or recipe.train.checkpoint_dir / "visual-cache"
        cache = VisualTokenCache(cache_dir, model, processor.preprocessor, recipe.model.num_frames)
    dataset = QADataset(samples, recipe.data.media_root, recipe.model.num_frames, sources, cache)
    validation = None
    if recipe.data.validation:
        validation = QADataset(_samples(recipe, recipe.data.validation), recipe.data.media_root, recipe.model.num_frames, sources, cache)
    if cache is not None:
        with args.main_process_first(desc="visual token cache"):
            cache.build([dataset.video(s) for s in [*samples, *(validation.samples if validation else [])]])

    trainer = PatchTrainer(
        model=model, args=args, train_dataset=dataset, eval_dataset=validation, data_collator=QACollator(processor),
        patch_learning_rate=recipe.train.patch_learning_rate,
    )
    # Runs started before checkpoints moved to work_dir kept them in output_dir.
    checkpoint = last_complete_checkpoint(recipe.train.checkpoint_dir) or last_complete_checkpoint(
        recipe.train.output_dir
    )
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(recipe.train.output_dir)  # with a validation split: the best checkpoint's weights
    if trainer.args.should_save:
        out = Path(recipe.train.output_dir)
        write_text(out / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        if validation is not None:
            evals = [{"step": e["step"], "eval_loss": e["eval_loss"]} for e in trainer.state.log_history if "eval_loss" in e]
            summary = {"best_checkpoint": trainer.state.best_model_checkpoint, "best_eval_loss": trainer.state.best_metric, "evaluations": evals}
            write_text(out / "validation.json", json.dumps(summary, indent=2) + "\n")
    return Path(recipe.train.output_dir)
