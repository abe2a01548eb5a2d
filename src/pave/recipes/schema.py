"""Training recipes: YAML files mapped onto dataclasses, validated before anything runs.

A recipe holds only what differs from the defaults below (the paper's, Appendix B). Unknown
keys and values of the wrong type fail at load time with the dotted key in the message, and
``key=value`` overrides from the command line go through the same checks.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pave.files import read_utf8


class RecipeError(ValueError):
    """A recipe key is unknown or its value has the wrong type; the message names the key."""


@dataclass
class ModelSection:
    """The base model. ``base``: a model id or local path; ``dtype``: ``auto`` picks bfloat16
    where the hardware supports it, else float32. ``newline_position``: where the base's newline
    token goes among a video's tokens: ``one_token`` (transformers: once per video), ``grid``
    (after every row of every frame: the authors' setting), ``frame`` or ``no_token``; unset, the
    base family's own (``one_token`` for LLaVA-OneVision, ``no_token`` for bases without one);
    saved with the patch, so inference lays videos out the same way. ``num_frames``: key frames
    per video; unset, the family's own protocol (32 for LLaVA-OneVision, 8 for Video-LLaVA)."""

    base: str = "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"
    dtype: str = "auto"
    num_frames: int | None = None
    newline_position: str | None = None


@dataclass
class PatchSection:
    """The patch or adapter to train (see docs/guides/adapters.md).

    ``method``: a registered method (``pave methods`` lists them): ``pave`` (patch + LoRA),
    ``pave-learnable`` (the patch with learnable queries), ``ft`` (LoRA only, no side channel),
    ``interleave`` (side tokens as extra LLM tokens), ``qformer`` (Video-LLaMA's video and audio
    Q-Formers), ``pooling`` (PLLaVA's pooling of the visual tokens) or one of your own.
    ``side_channel`` names the feature store in ``data.features`` it reads
    (``null`` gives a Q-Former without its audio branch). ``init_patches``: saved patches loaded
    frozen before training (stage-wise multi-patch training, paper Sec. 4.4). ``init_from``: a
    saved patch or adapter of the same method that the trained one starts from (and its LoRA,
    if it has one), for multi-stage schedules such as Video-LLaMA's caption pre-alignment then
    instruction tuning. ``config``: overrides of the method's config (``PatchConfig`` or the
    adapter's, e.g. ``num_layers: 3``)."""

    method: str = "pave"
    name: str | None = None
    side_channel: str | None = "audio"
    init_patches: list[str] = field(default_factory=list)
    init_from: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoraSection:
    """LoRA on the LLM's attention and MLP projections (paper: r=64, alpha=16)."""

    enabled: bool = True
    r: int = 64
    alpha: int = 16
    dropout: float = 0.05


@dataclass
class DataSection:
    """Training data: a benchmark's official annotation files, its media root and the feature
    stores of the side channels (side channel name -> store directory). ``validation``:
    annotation files of a validation split (same task, media root and stores); with them the
    validation loss is computed every ``train.eval_steps`` and the best checkpoint is the one
    saved. ``repeat``: a data mix, ``"<group>=<value>": times`` (e.g. ``"modality=Audio": 2``),
    repeating each training sample of that group that many times; a sample in several such
    groups takes the largest."""

    task: str = ""
    annotations: list[str] = field(default_factory=list)
    media_root: str = "."
    features: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    system_prompt: str | None = None
    validation: list[str] = field(default_factory=list)
    repeat: dict[str, int] = field(default_factory=dict)


@dataclass
class TrainSection:
    """Optimisation (paper: AdamW, lr 2e-5, cosine schedule with 3% warm-up, global batch 32).

    ``deepspeed``: a DeepSpeed config file, or ``zero2`` for the shipped ZeRO-2 config.
    ``global_batch_size`` is split into per-device batches and gradient accumulation steps over
    however many processes run. ``cache_visual_tokens`` encodes each video once with the frozen
    vision tower (exact: the tower is frozen and in eval mode) instead of every epoch, in
    ``visual_cache_dir`` (default: ``work_dir/visual-cache``; runs on the same videos and base
    can share one). ``work_dir`` (default: ``<output_dir>-work``) holds the checkpoints and the
    cache, so ``output_dir`` holds only what you ship: the patch, the LoRA adapter and the recipe.
    ``eval_steps`` (default: ``save_steps``, which must be a multiple of it) spaces the
    validation runs when ``data.validation`` is set. ``max_grad_norm``: gradient clipping (the
    authors' scripts clip at 0.1). ``optim``: any ``TrainingArguments.optim`` name (default: the Trainer's AdamW, fused where
    PyTorch has it).
    ``patch_learning_rate``: a learning rate of its own for the patch or adapter (default: the
    LoRA's ``learning_rate``). ``tf32``: allow TF32 matrix products on Ampere or newer GPUs
    (``null``: as PyTorch is set).
    """

    output_dir: str = "outputs/run"
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-5
    patch_learning_rate: float | None = None
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str | None = None
    tf32: bool | None = None
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    global_batch_size: int = 32
    per_device_batch_size: int = 1
    seed: int = 42
    bf16: str = "auto"
    gradient_checkpointing: bool = False
    cache_visual_tokens: bool = True
    visual_cache_dir: str | None = None
    work_dir: str | None = None
    save_steps: int = 500
    eval_steps: int | None = None
    save_total_limit: int | None = 2
    logging_steps: int = 10
    dataloader_workers: int = 0
    deepspeed: str | None = None
    report_to: str = "none"

    @property
    def checkpoint_dir(self) -> Path:
        """Where checkpoints (and, by default, the visual-token cache) go."""
        return Path(self.work_dir or f"{self.output_dir.rstrip('/')}-work")


@dataclass
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    patch: PatchSection = field(default_factory=PatchSection)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a YAML recipe (or start from the defaults) and apply ``key=value`` overrides."""
    data: dict[str, Any] = {}
    source = str(path) if path else "defaults"
    given: dict[str, str] = {}  # dotted key -> the override that set it (errors blame it, not the file)
    if path is not None:
        try:
            data = yaml.safe_load(read_utf8(path)) or {}
        except FileNotFoundError:
            raise RecipeError(f"{path}: recipe file not found") from None
        except yaml.YAMLError as err:
            raise RecipeError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"override {item!r}: expected key=value, e.g. train.learning_rate=1e-4")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {item!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(raw) if raw else None
        given[key] = item

    def blame(key: str) -> str:
        """Who set ``key``: the override that names it or a section above it, else the file."""
        parts = key.split(".")
        for depth in range(len(parts), 0, -1):
            if ".".join(parts[:depth]) in given:
                return f"override {given['.'.join(parts[:depth])]!r}"
        return source

    return _build(Recipe, data, blame, "")


def _build(cls, data: Any, blame, prefix: str):
    if not isinstance(data, dict):
        key = prefix.rstrip(".")
        raise RecipeError(f"{blame(key)}: {key or 'recipe'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise RecipeError(f"{blame(key)}: unknown key {key}; known keys here: {', '.join(sorted(names))}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, blame, f"{prefix}{name}.")
        else:
            key = f"{prefix}{name}"
            values[name] = _check(value, hint, blame(key), key)
    return cls(**values)


def _check(value: Any, hint: Any, source: str, key: str) -> Any:
    """Return ``value`` if it fits ``hint`` (ints are accepted for floats), else raise."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check(value, option, source, key)
            except RecipeError:
                continue
    elif hint is type(None):
        if value is None:
            return None
    elif hint is Any:
        return value
    elif origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(hint)
            return [_check(v, item, source, f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            _, item = typing.get_args(hint)
            return {str(k): _check(v, item, source, f"{key}.{k}") for k, v in value.items()}
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    raise RecipeError(f"{source}: {key} must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint)).replace("list", "a list").replace("dict", "a mapping")
