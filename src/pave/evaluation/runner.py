"""Generate answers for a benchmark split, appending to a predictions file as it goes.

A killed run loses at most the batch in flight: a rerun reads the predictions already written
and only generates the rest. Scoring is :func:`pave.evaluation.scoring.score`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from pave.evaluation.scoring import read_predictions

logger = logging.getLogger(__name__)


def generate_predictions(
    model,
    dataset,
    collator,
    predictions_path: str | Path,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    desc: str = "generating",
) -> dict[str, str]:
    """Answer every question of ``dataset`` not yet in ``predictions_path``; return all predictions.

    Args:
        model: a :class:`~pave.models.PatchedModel`.
        dataset: a :class:`~pave.training.data.QADataset`.
        collator: a :class:`~pave.training.data.QACollator` with ``train=False``.
        predictions_path: JSON Lines file, ``{"id", "prediction"}`` per line, appended to.
    """
    path = Path(predictions_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_predictions(path) if path.exists() else {}
    todo = [i for i, s in enumerate(dataset.samples) if s.id not in done]
    if done:
        logger.info("%s: %d predictions already there, %d to go", path, len(done), len(todo))
    if not todo:
        return done
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, collate_fn=collator)
    device = next(model.parameters()).device
    model.eval()
    with open(path, "a", encoding="utf-8") as f, tqdm(total=len(todo), desc=desc, unit="question") as bar:
        for batch in loader:
            ids = [dataset.samples[i].id for i in todo[bar.n : bar.n + len(batch["input_ids"])]]
            batch = _to(batch, device)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
            for sample_id, text in zip(ids, collator.processor.decode(out), strict=True):
                done[sample_id] = text
                f.write(json.dumps({"id": sample_id, "prediction": text}, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(ids))
    return done


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value
