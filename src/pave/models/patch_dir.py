"""The patch directory: what ``PatchedModel.save_pretrained`` and ``pave convert`` write and
every loader reads, written and validated in this one place.

::

    patch_config.json           {"kind", "name", "config", "newline_position", "pave_version"}
                                and, for a converted checkpoint, its provenance
    patch.safetensors           the module's state dict; names carry no patch name, so patches
                                load under any name and stack
    adapter_config.json         peft's LoRA config, when LoRA was trained with the patch
    adapter_model.safetensors   peft's LoRA weights

A directory with only the LoRA pair is LoRA-only fine-tuning (``ft``). Weights are read from
safetensors only: a pickle file where one is expected is named and refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pave import __version__
from pave.adapters.base import NEWLINE_POSITIONS
from pave.files import read_utf8, write_atomic, write_text
from pave.methods import kind_of, kinds

PATCH_CONFIG_NAME = "patch_config.json"
PATCH_WEIGHTS_NAME = "patch.safetensors"
LORA_CONFIG_NAME = "adapter_config.json"
LORA_WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def write_patch(directory: str | Path, name: str, module: nn.Module, newline_position: str, **provenance) -> dict:
    """Write a patch or adapter module's config and weights; ``provenance`` (e.g. the source
    of a converted checkpoint) is recorded beside them. Returns the ``patch_config.json`` record.

    The weights are written first, so a directory with a config always has its weights.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind = kind_of(module).name
    record = {"kind": kind, "name": name, "pave_version": __version__, "newline_position": newline_position}
    record |= {"config": module.config.to_dict()} | provenance
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    metadata = {"format": "pt", "kind": kind}
    write_atomic(directory / PATCH_WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata=metadata))
    write_text(directory / PATCH_CONFIG_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def read_record(directory: str | Path) -> dict[str, Any]:
    """The ``patch_config.json`` of a patch directory, checked to be a record of a known kind."""
    path = Path(directory) / PATCH_CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"{directory}: not a patch directory (no {PATCH_CONFIG_NAME})")
    try:
        record = json.loads(read_utf8(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
    for key in ("kind", "config"):
        if key not in record:
            raise ValueError(f"{path}: missing field {key!r}")
    known = kinds()
    if record["kind"] not in known:
        raise ValueError(f"{path}: unknown patch kind {record['kind']!r}; known: {sorted(known)}")
    position = record.get("newline_position", "one_token")  # older patches: transformers' layout
    if position not in NEWLINE_POSITIONS:
        raise ValueError(f"{path}: newline_position must be one of {NEWLINE_POSITIONS}, got {position!r}")
    return record | {"newline_position": position, "name": record.get("name", Path(directory).name)}


def read_patch_config(directory: str | Path) -> tuple[Any, type[nn.Module], str]:
    """(config, module class, saved name) of a patch directory."""
    record = read_record(directory)
    kind = kinds()[record["kind"]]
    config = kind.config_cls.from_dict(record["config"], source=str(Path(directory) / PATCH_CONFIG_NAME))
    return config, kind.module_cls, record["name"]


def read_patch(directory: str | Path) -> nn.Module:
    """The module a patch directory holds, its weights loaded strictly."""
    config, module_cls, _ = read_patch_config(directory)
    module = module_cls(config)
    weights = Path(directory) / PATCH_WEIGHTS_NAME
    try:
        module.load_state_dict(load_safetensors(weights), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights}: weights do not match {PATCH_CONFIG_NAME}: {err}") from None
    return module


def recorded_newline_position(directory: str | Path) -> str:
    """The newline position a saved patch was trained with (older patches: transformers' one)."""
    return read_record(directory)["newline_position"]


def check_patch_dir(directory: str | Path) -> None:
    """A patch directory is complete or refused: weights without the config that says what they
    are would otherwise be skipped in silence."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such patch directory")
    if (directory / LORA_CONFIG_NAME).exists():
        try:
            adapter = json.loads(read_utf8(directory / LORA_CONFIG_NAME))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{directory / LORA_CONFIG_NAME}: not valid JSON ({exc})") from None
        if not isinstance(adapter, dict) or "peft_type" not in adapter:
            raise ValueError(f"{directory / LORA_CONFIG_NAME}: not a peft adapter config (no 'peft_type')")
    pairs = ((PATCH_WEIGHTS_NAME, PATCH_CONFIG_NAME, "patch"), (LORA_WEIGHTS_NAME, LORA_CONFIG_NAME, "LoRA adapter"))
    for weights, config, what in pairs:
        if (directory / weights).exists() and not (directory / config).exists():
            raise ValueError(f"{directory}: {weights} without {config}; the {what} cannot be loaded without its config")
        if (directory / config).exists() and not (directory / weights).exists():
            load_safetensors(directory / weights, check_only=True)  # names pickle files, else "missing"
    if not any((directory / config).exists() for _, config, _ in pairs):
        raise FileNotFoundError(f"{directory}: neither a patch ({PATCH_CONFIG_NAME}) nor a LoRA adapter ({LORA_CONFIG_NAME})")


def recorded_base(directory: str | Path) -> str:
    """The base model a saved patch (or LoRA-only adapter) was trained on."""
    directory = Path(directory)
    check_patch_dir(directory)
    if (directory / PATCH_CONFIG_NAME).exists():
        base = read_patch_config(directory)[0].base_model
    else:
        base = json.loads(read_utf8(directory / LORA_CONFIG_NAME)).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{directory}: no base model recorded; pass base=...")
    return base


def load_safetensors(path: Path, check_only: bool = False) -> dict[str, torch.Tensor] | None:
    """Load a safetensors file, refusing pickle-based checkpoints next to it."""
    if not path.exists():
        pickled = [p.name for p in path.parent.glob(f"{path.stem}*") if p.suffix in PICKLE_SUFFIXES]
        if pickled:
            raise ValueError(
                f"{path.parent}: found {pickled} but no {path.name}; pickle checkpoints are refused "
                "(they can run code when loaded). Convert them to safetensors."
            )
        raise FileNotFoundError(f"{path}: missing")
    if check_only:
        return None
    try:
        tensors = load_file(path)
    except Exception as exc:  # safetensors raises its own types for truncated or foreign files
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None
    broken = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:
        raise ValueError(f"{path}: NaN or Inf values in {broken[:5]}; the run that wrote it diverged")
    return tensors
