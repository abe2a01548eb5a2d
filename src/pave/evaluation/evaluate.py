"""`evaluate`: answer a benchmark's questions with a (patched) model, then score them.

Predictions are appended to ``OUT/predictions.jsonl`` as they are generated (a killed run
resumes); the report goes to ``OUT/metrics.json`` and ``OUT/metrics.md`` with the FLOPs and
parameters of the evaluated model, counted as ``pave flops`` counts them, and the task's protocol
(:mod:`pave.data.datasets.protocol`) with every setting of the run that differs from it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from pave.batching import QACollator, QADataset, VisualTokenCache, store_source
from pave.data.datasets.base import load_samples
from pave.data.datasets.protocol import get_protocol
from pave.evaluation.cost import model_accounting
from pave.evaluation.provenance import run_record
from pave.evaluation.runner import generate_predictions
from pave.evaluation.scoring import format_report, score
from pave.files import write_text
from pave.sidechannels.store import FeatureStore

logger = logging.getLogger(__name__)


def evaluate(
    model,
    processor,
    task: str,
    annotations: Sequence[str | Path],
    media_root: str | Path,
    out: str | Path,
    features: Mapping[str, str | Path] | None = None,
    num_frames: int = 32,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    visual_cache: str | Path | None = None,
    run_name: str | None = None,
    restart: bool = False,
) -> dict:
    """Generate (resumably) and score; returns the report written to ``out/metrics.json``.

    A sample whose video or features cannot be read is skipped and listed with the reason under
    ``skipped`` (and counted in ``counts``); the rest is scored.

    Args:
        model: a :class:`~pave.models.PatchedModel`.
        processor: its :class:`~pave.models.processor.VideoChatProcessor`.
        features: side channel name -> feature store, for every active patch's side channel.
        max_new_tokens: default: the task protocol's.
        visual_cache: a folder to cache the frozen vision tower's tokens in (reruns skip it).
        run_name: when several runs share ``out``, files are ``predictions_<run_name>.jsonl``
            and ``metrics_<run_name>.json`` / ``.md``.
        restart: discard predictions already in ``out``; without it, predictions made by
            another model or with other settings are refused (see :mod:`pave.evaluation.provenance`).
    """
    out = Path(out)
    protocol = get_protocol(task)
    max_new_tokens = max_new_tokens or protocol.max_new_tokens
    used = {"system_prompt": processor.system_prompt, "max_new_tokens": max_new_tokens, "num_frames": num_frames}
    deviations = protocol.deviations(used, model.family.system_prompt or "")
    for line in deviations:  # comparable with published numbers only when there are none
        logger.warning("%s: differs from the task's protocol (%s): %s", task, protocol.source, line)
    suffix = f"_{run_name}" if run_name else ""
    samples = load_samples(task, list(annotations))
    stores = {name: FeatureStore.existing(path, f"--features {name}") for name, path in (features or {}).items()}
    channels = model.side_channels
    missing = [c for c in channels if c not in stores]
    if missing:
        raise ValueError(f"the model's patches need side channel(s) {missing}; pass their feature stores")
    sources = {c: store_source(stores[c], c) for c in channels}
    cache = VisualTokenCache(visual_cache, model, processor.preprocessor, num_frames) if visual_cache else None
    dataset = QADataset(samples, media_root, num_frames, sources, cache)
    if cache is not None:
        cache.build([dataset.video(s) for s in samples])
    generated = generate_predictions(
        model, dataset, QACollator(processor, train=False), out / f"predictions{suffix}.jsonl",
        batch_size=batch_size, max_new_tokens=max_new_tokens, desc=f"{run_name or task} answers",
        run=run_record(model, processor, task, annotations, num_frames, max_new_tokens, features or {}),
        restart=restart,
    )
    report = score(task, samples, generated.predictions)
    report["counts"]["skipped"] = len(generated.skipped)
    report["skipped"] = generated.skipped  # sample id -> why its media or features could not be read
    report["protocol"] = protocol.to_dict() | {"used": used, "deviations": deviations}
    readable = next((s for s in samples if s.id in generated.predictions), None)
    if readable is not None:  # the cost of a sample that could be read
        report["cost"] = model_accounting(model, num_frames, dataset[samples.index(readable)]).to_dict()
    write_text(out / f"metrics{suffix}.json", json.dumps(report, indent=2) + "\n")
    write_text(out / f"metrics{suffix}.md", format_report(report) + "\n")
    return report
