"""The authors' released PAVE checkpoints -> ``pave`` patch directories.

A training output of the authors' code holds peft's LoRA adapter (``adapter_config.json`` and
``adapter_model.bin`` or ``.safetensors``), the patch weights in ``non_lora_trainables.bin`` (a
``torch.save`` pickle, keys under ``...temporal_aggregator.``) and their model ``config.json``.
:func:`convert` reads those (pickles with ``torch.load(weights_only=True)``; the only other
reader of pickles is the import of the authors' feature files, :mod:`pave.sidechannels.released`), infers the patch's architecture from the weights' shapes, renames the LoRA keys
from the authors' module names (``model.layers.{i}``) to transformers'
``LlavaOnevisionForConditionalGeneration`` ones (``model.language_model.layers.{i}``), refuses
any key it does not recognise, and writes a patch directory that
:meth:`~pave.models.PatchedModel.from_pretrained` loads strictly.

The released patch computes what a :class:`~pave.patch.PatchConfig` with ``value_from_key=True``
(values through the key projection), ``rope="none"`` and the chunk alignment computes, on the
authors' token layout (a newline token after every row of every frame: ``newline_position``
``"grid"``). ``docs/guides/released-checkpoints.md`` walks through it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pave.adapters.base import NEWLINE_POSITIONS
from pave.files import read_utf8, write_atomic
from pave.models.families.llava_onevision import LORA_TARGET_MODULES
from pave.models.patch_dir import write_patch
from pave.patch import PatchConfig, PavePatch

logger = logging.getLogger(__name__)

#: The patch's module name in the authors' model; its weights are the keys below it.
PATCH_MODULE = "temporal_aggregator."
#: Side tokens per frame (s_h, s_w) and the encoder of each released side channel.
SIDE_CHANNELS = {
    "audio": ((1, 1), "imagebind-huge"),
    "video": ((2, 2), "languagebind-video"),
    "3d": ((24, 24), "llava3d"),
    "exo": ((14, 14), None),
}
#: LLM width -> the transformers checkpoint of the authors' base (lmms-lab/llava-onevision-qwen2-*-ov).
BASES = {896: "llava-hf/llava-onevision-qwen2-0.5b-ov-hf", 3584: "llava-hf/llava-onevision-qwen2-7b-ov-hf"}
_LORA_KEY = re.compile(
    r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.weight$"
)


class ConversionError(ValueError):
    """The folder is not an authors' checkpoint this converter knows; the message names the file or key."""


@dataclass
class Converted:
    """What :func:`convert` wrote: the patch directory, its config and the LoRA layers it holds."""

    directory: Path
    config: PatchConfig
    lora_layers: int


def convert(
    source: str | Path,
    out: str | Path,
    side_channel: str,
    base: str | None = None,
    num_heads: int = 4,
    name: str | None = None,
) -> Converted:
    """Convert an authors' training output directory into a ``pave`` patch directory.

    Args:
        source: the folder holding ``non_lora_trainables.bin`` (and the LoRA adapter).
        out: the patch directory to write.
        side_channel: ``audio``, ``video``, ``3d`` or ``exo``: what the patch reads (the weights
            give its width, not its kind).
        base: the base to record; default: the llava-hf checkpoint of the authors' base with the
            patch's output width (0.5B or 7B).
        num_heads: attention heads (the weights do not say; every released config has 4).
        name: the patch's name; default: the side channel.
    """
    source, out = Path(source), Path(out)
    if side_channel not in SIDE_CHANNELS:
        raise ConversionError(f"side channel must be one of {sorted(SIDE_CHANNELS)}, got {side_channel!r}")
    patch_file = source / "non_lora_trainables.bin"
    if not patch_file.is_file():
        raise ConversionError(f"{source}: no non_lora_trainables.bin (the patch weights of an authors' checkpoint)")
    weights = _patch_weights(patch_file)
    side_grid, encoder = SIDE_CHANNELS[side_channel]
    config = _infer_config(weights, patch_file, num_heads, side_channel, side_grid, encoder, base)
    module = PavePatch(config)
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ConversionError(f"{patch_file}: the weights do not form a released patch: {err}") from None
    out.mkdir(parents=True, exist_ok=True)
    files = {p.name: _digest(p) for p in sorted(source.iterdir()) if p.is_file()}
    provenance = {"path": str(source.resolve()), "files": files}
    layers = _convert_lora(source, out, config.base_model)
    # The patch last: its config is what makes the folder a patch directory.
    write_patch(out, name or side_channel, module, _newline_position(source), converted_from=provenance)
    logger.info("%s -> %s (%s patch, %d LoRA layers)", source, out, side_channel, layers)
    return Converted(out, config, layers)


def _load_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error names nothing: say which file
        raise ConversionError(f"{path}: not a weights-only torch file ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: expected a dict of tensors")
    return state


def _patch_weights(path: Path) -> dict[str, torch.Tensor]:
    weights = {}
    for key, value in _load_pickle(path).items():
        if PATCH_MODULE not in key:
            raise ConversionError(f"{path}: key {key!r} is not a patch weight (expected '...{PATCH_MODULE}<name>')")
        weights[key.split(PATCH_MODULE, 1)[1]] = value.float()
    known = set(PavePatch(PatchConfig()).state_dict()) | {"learnable_query"}
    for key in weights:
        stem = re.sub(r"^cross_attn_layers\.\d+\.", "cross_attn_layers.0.", key)
        if stem not in known:
            raise ConversionError(f"{path}: unknown patch weight {PATCH_MODULE}{key}")
    return weights


def _infer_config(weights, path, num_heads, side_channel, side_grid, encoder, base) -> PatchConfig:
    def shape(key):
        if key not in weights:
            raise ConversionError(f"{path}: missing patch weight {PATCH_MODULE}{key}")
        return tuple(weights[key].shape)

    hidden, side_dim = shape("input_mapping.weight")
    output_dim = shape("output_mapping.2.weight")[0]
    learnable = "learnable_query" in weights
    query = {}
    if learnable:
        cells = shape("learnable_query")[0]
        side = int(round(cells**0.5))
        if side * side != cells:
            raise ConversionError(f"{path}: learnable_query has {cells} rows, not a square grid")
        query = {"query_source": "learnable", "query_grid": (side, side)}
    else:
        query = {"query_dim": shape("query_input_mapping.weight")[1]}
    layers = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("cross_attn_layers."))
    if base is None and output_dim not in BASES:
        raise ConversionError(f"{path}: output width {output_dim} is no released base's (896, 3584); pass base=")
    try:
        return PatchConfig(
            side_dim=side_dim,
            output_dim=output_dim,
            hidden_dim=hidden,
            num_layers=layers,
            num_heads=num_heads,
            ffn_dim=shape("cross_attn_layers.0.ffn.1.weight")[0],
            output_mlp_dim=shape("output_mapping.0.weight")[0],
            rope="none",
            value_from_key=True,
            side_channel=side_channel,
            side_grid=side_grid,
            side_encoder=encoder,
            base_model=base or BASES[output_dim],
            **query,
        )
    except ValueError as err:
        raise ConversionError(f"{path}: {err}") from None


def _newline_position(source: Path) -> str:
    """The authors' ``mm_newline_position`` (their config.json; ``grid`` in every released run)."""
    config = source / "config.json"
    if not config.is_file():
        return "grid"
    try:
        value = json.loads(read_utf8(config)).get("mm_newline_position", "grid")
    except json.JSONDecodeError as err:
        raise ConversionError(f"{config}: not valid JSON ({err})") from None
    if value not in NEWLINE_POSITIONS:
        raise ConversionError(f"{config}: mm_newline_position {value!r} is not one pave knows")
    return value


def _convert_lora(source: Path, out: Path, base: str) -> int:
    """peft's adapter with transformers' module names; returns how many LLM layers it adapts."""
    from peft import LoraConfig

    config_file = source / "adapter_config.json"
    weight_files = [p for p in (source / "adapter_model.safetensors", source / "adapter_model.bin") if p.is_file()]
    if not config_file.is_file() and not weight_files:
        return 0  # a patch trained without LoRA
    if not config_file.is_file() or not weight_files:
        raise ConversionError(f"{source}: a LoRA adapter needs both adapter_config.json and adapter_model.*")
    try:
        theirs = json.loads(read_utf8(config_file))
    except json.JSONDecodeError as err:
        raise ConversionError(f"{config_file}: not valid JSON ({err})") from None
    path = weight_files[0]
    state = load_file(path) if path.suffix == ".safetensors" else _load_pickle(path)
    renamed, layers = {}, set()
    for key, value in state.items():
        match = _LORA_KEY.match(key)
        if match is None:
            raise ConversionError(
                f"{path}: LoRA key {key!r} is not on the LLM's attention or MLP projections "
                "(expected base_model.model.model.layers.<i>.<self_attn|mlp>.<proj>.lora_<A|B>.weight)"
            )
        layer, module, half = match.groups()
        layers.add(int(layer))
        renamed[f"base_model.model.model.language_model.layers.{layer}.{module}.lora_{half}.weight"] = value.contiguous()
    for field in ("r", "lora_alpha"):
        if not isinstance(theirs.get(field), int):
            raise ConversionError(f"{config_file}: field {field!r} must be an integer, got {theirs.get(field)!r}")
    LoraConfig(
        r=theirs["r"],
        lora_alpha=theirs["lora_alpha"],
        lora_dropout=float(theirs.get("lora_dropout", 0.0)),
        target_modules=LORA_TARGET_MODULES,
        base_model_name_or_path=base,
    ).save_pretrained(str(out))
    write_atomic(out / "adapter_model.safetensors", lambda tmp: save_file(renamed, tmp, metadata={"format": "pt"}))
    return len(layers)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
