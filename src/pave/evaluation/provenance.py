"""What made a predictions file, recorded beside it and checked before a run resumes it.

A resumed evaluation appends to the predictions already written; that is only honest when the
same model answered them the same way. ``predictions.jsonl`` therefore has a ``predictions.run.json``
beside it: the task and annotation files, the base, every active patch's config, a hash of the
patch and LoRA weights, the prompt (system message, chat template), the preprocessing, the frames,
the generation settings and the feature stores. A resume with anything different is refused with
a message naming what differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from pave.files import write_text

logger = logging.getLogger(__name__)


class StalePredictionsError(ValueError):
    """A predictions file was made by another model or with other settings than this run."""


def record_path(predictions: str | Path) -> Path:
    """``predictions.jsonl`` -> ``predictions.run.json``."""
    return Path(predictions).with_suffix(".run.json")


def weights_fingerprint(model) -> str:
    """A hash of the tensors a patched model adds to its base (patches and LoRA)."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith("patches.") or "lora_" in name:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def run_record(
    model,
    processor,
    task: str,
    annotations: Sequence[str | Path],
    num_frames: int,
    max_new_tokens: int,
    features: Mapping[str, str | Path],
) -> dict:
    """Everything that decides the answers of an evaluation run, as JSON values."""
    record = {
        "task": task,
        "annotations": [str(Path(a).resolve()) for a in annotations],
        "base": model.base_name,
        "patches": {
            name: {"kind": type(model.patches[name]).__name__, "config": dataclasses.asdict(model.patches[name].config)}
            for name in model.active_patches
        },
        "weights": weights_fingerprint(model),
        "system_prompt": processor.system_prompt,
        "chat_template": hashlib.sha1(processor.chat_template.encode()).hexdigest()[:16],
        "preprocessing": processor.preprocessor.fingerprint,
        "frames": num_frames,
        "generation": {"max_new_tokens": max_new_tokens, "do_sample": False},
        "features": {name: str(Path(path).resolve()) for name, path in sorted(features.items())},
    }
    return json.loads(json.dumps(record))  # tuples -> lists, as they read back


def check_or_start(predictions: str | Path, record: dict, restart: bool = False) -> None:
    """Before appending to ``predictions``: refuse when it was made by another run (unless
    ``restart``, which removes it), else write ``record`` beside it."""
    path, meta = Path(predictions), record_path(predictions)
    if restart:
        path.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
    has_answers = path.exists() and path.stat().st_size > 0
    if has_answers:
        if not meta.exists():
            raise StalePredictionsError(
                f"{path} holds predictions but no {meta.name} saying what made them; "
                "use another output folder, or --restart to answer afresh"
            )
        try:
            saved = json.loads(meta.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StalePredictionsError(f"{meta}: not a valid run record ({exc}); --restart answers afresh") from None
        differences = _differences(saved, record)
        if differences:
            raise StalePredictionsError(
                f"{path} was made by another run ({'; '.join(differences)}); "
                "use another output folder, or --restart to answer afresh"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(meta, json.dumps(record, indent=2) + "\n")


def _differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``key: saved != current`` for each leaf that differs (nested keys joined with dots)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} then, {b!r} now")
    return out
