"""Generate answers for a benchmark split, appending to a predictions file as it goes.

A killed run loses at most the batch in flight: a rerun reads the predictions already written
(dropping a last line the kill tore) and only generates the rest, after checking that they were
made by the same run (:mod:`pave.evaluation.provenance`). Scoring is
:func:`pave.evaluation.scoring.score`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pave.evaluation.provenance import check_or_start
from pave.evaluation.scoring import read_predictions

logger = logging.getLogger(__name__)


# What reading one sample can raise for bad input (MediaError is a ValueError, a missing file an
# OSError, a missing feature item a KeyError): that sample is skipped, the run goes on.
SKIPPABLE = (ValueError, KeyError, OSError)


@dataclass
class Generation:
    """predictions: sample id -> answer (those already in the file included); skipped: sample
    id -> why it could not be read (tried again by the next run)."""

    predictions: dict[str, str]
    skipped: dict[str, str] = field(default_factory=dict)


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
) -> Generation:
    """Answer every question of ``dataset`` not yet in ``predictions_path``, skipping (and
    reporting) the ones whose media or features cannot be read.

    Args:
        model: a :class:`~pave.models.PatchedModel`.
        dataset: a :class:`~pave.batching.QADataset`.
        collator: a :class:`~pave.batching.QACollator` with ``train=False``.
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
    result = Generation(read_predictions(path) if path.exists() else {})
    todo = [i for i, s in enumerate(dataset.samples) if s.id not in result.predictions]
    if result.predictions:
        logger.info("%s: %d predictions already there, %d to go", path, len(result.predictions), len(todo))
    if not todo:
        return result

    def collate(items: list[dict]):
        good = [it for it in items if "skipped" not in it]
        return (collator(good) if good else None), [it["id"] for it in good], [it for it in items if "skipped" in it]

    loader = DataLoader(_Skipping(dataset, todo), batch_size=batch_size, collate_fn=collate)
    device = next(model.parameters()).device
    model.eval()
    with open(path, "a", encoding="utf-8") as f, tqdm(total=len(todo), desc=desc, unit="question") as bar:
        for batch, ids, bad in loader:  # ids come with the items, never from a counter
            for item in bad:
                result.skipped[item["id"]] = item["skipped"]
                logger.warning("skipping sample %s: %s", item["id"], item["skipped"])
            if batch is not None:
                with torch.no_grad():
                    out = model.generate(**_to(batch, device), max_new_tokens=max_new_tokens, do_sample=False)
                for sample_id, text in zip(ids, collator.processor.decode(out), strict=True):
                    result.predictions[sample_id] = text
                    f.write(json.dumps({"id": sample_id, "prediction": text}, ensure_ascii=False) + "\n")
                f.flush()
            bar.update(len(ids) + len(bad))
    if result.skipped:
        logger.warning("%s: %d sample(s) skipped (media or features unreadable)", path, len(result.skipped))
    return result


class _Skipping(Dataset):
    """``dataset[indices[k]]``, or ``{"id", "skipped": reason}`` when that item cannot be read."""

    def __init__(self, dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        index = self.indices[k]
        try:
            return self.dataset[index]
        except SKIPPABLE as exc:
            return {"id": self.dataset.samples[index].id, "skipped": str(exc).strip("'\"")}


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
