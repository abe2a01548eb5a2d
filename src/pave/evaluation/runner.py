"""Generate answers for a benchmark split, appending to a predictions file as it goes.

A killed run loses at most the batch in flight: a rerun reads the predictions already written
(dropping a last line the kill tore) and only generates the rest, after checking that they were
made by the same run (:mod:`pave.evaluation.provenance`). Scoring is
:func:`pave.evaluation.scoring.score`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from pave.evaluation.provenance import check_or_start
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
    run: dict | None = None,
    restart: bool = False,
) -> dict[str, str]:
    """Answer every question of ``dataset`` not yet in ``predictions_path``; return all predictions.

    Args:
        model: a :class:`~pave.models.PatchedModel`.
        dataset: a :class:`~pave.training.data.QADataset`.
        collator: a :class:`~pave.training.data.QACollator` with ``train=False``.
        predictions_path: JSON Lines file, ``{"id", "prediction"}`` per line, appended to.
        run: what makes these answers (:func:`~pave.evaluation.provenance.run_record`); when
            given, a file made by another run is refused and the record is kept beside it.
        restart: discard the predictions already there.
    """
    path = Path(predictions_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if run is not None:
        check_or_start(path, run, restart=restart)
    elif restart:
        path.unlink(missing_ok=True)
    _drop_torn_last_line(path)
    done = read_predictions(path) if path.exists() else {}
    todo = [i for i, s in enumerate(dataset.samples) if s.id not in done]
    if done:
        logger.info("%s: %d predictions already there, %d to go", path, len(done), len(todo))
    if not todo:
        return done
    # Batch k holds todo[k * batch_size : (k + 1) * batch_size]: the loader is sequential.
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, collate_fn=collator)
    device = next(model.parameters()).device
    model.eval()
    with open(path, "a", encoding="utf-8") as f, tqdm(total=len(todo), desc=desc, unit="question") as bar:
        for number, batch in enumerate(loader):
            ids = [dataset.samples[i].id for i in todo[number * batch_size : (number + 1) * batch_size]]
            batch = _to(batch, device)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
            for sample_id, text in zip(ids, collator.processor.decode(out), strict=True):
                done[sample_id] = text
                f.write(json.dumps({"id": sample_id, "prediction": text}, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(ids))
    return done


def _drop_torn_last_line(path: Path) -> None:
    """Every line is written whole with its newline; a file not ending in one was killed mid-line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    logger.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", path, len(data) - keep)
    with open(path, "r+b") as f:
        f.truncate(keep)


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value
