"""Score predictions against a benchmark's samples with that benchmark's own protocol.

A run writes one JSON Lines file of predictions, ``{"id": <sample id>, "prediction": <text>}``
per line (:func:`write_predictions`, appendable so a run can resume), and :func:`score` turns
it into the paper's numbers::

    samples = load_samples("videomme", ["videomme/test-00000-of-00001.parquet"])
    report = score("videomme", samples, read_predictions("preds.jsonl"))
    report["metrics"]["accuracy/duration=short"]

Protocols, per task (all numbers ×100, as in the paper's tables):

==================  ==========================================================================
avsd                CIDEr, BLEU-4, METEOR, ROUGE-L (coco-caption, one reference per dialog)
avqa, videomme      accuracy; letter by lmms-eval's VideoMME rule; per question type / duration
mlvu                same rule; micro accuracy and the mean over the seven tasks (M-Avg)
mvbench             accuracy by lmms-eval's MVBench rule; empty answers leave the denominator
music_avqa          correct when the answer word is a substring of the prediction (PAVE);
                    accuracy per modality (Audio, Visual, Audio-Visual) and type
scanqa              EM@1, refined EM and caption metrics on LLaVA-3D-cleaned strings
sqa3d               EM@1 and refined EM, overall and per question type (LLaVA-3D)
egoexo_proficiency  top-1 accuracy of the level the answer names; per scenario
==================  ==========================================================================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pave.data.datasets.base import Sample
from pave.evaluation.answers import extract_letter, extract_letter_mvbench, match_label
from pave.evaluation.metrics import caption_metrics, clean_answer, exact_match, grouped_accuracy
from pave.files import NotUTF8Error, read_utf8

logger = logging.getLogger(__name__)


class PredictionsError(ValueError):
    """A predictions file line is not a JSON object with string ``id`` and ``prediction``."""


def read_predictions(path: str | Path) -> dict[str, str]:
    """Read a predictions JSONL file into ``{id: prediction}``; blank lines are skipped.

    Raises :class:`PredictionsError` naming the file and line for a line that is not JSON, lacks
    a field, has a non-string field (an integer ``id`` is read as its digits), or repeats an id.
    """
    path = Path(path)
    predictions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    try:
        lines = read_utf8(path).splitlines()
    except NotUTF8Error as exc:
        raise PredictionsError(str(exc)) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(entry, dict):
            raise PredictionsError(f"{where}: expected an object with 'id' and 'prediction'")
        for name in ("id", "prediction"):
            if name not in entry:
                raise PredictionsError(f"{where}: missing field '{name}'")
        # Official files number their questions: an integer id means the same as its digits.
        if isinstance(entry["id"], int) and not isinstance(entry["id"], bool):
            entry["id"] = str(entry["id"])
        for name in ("id", "prediction"):
            if not isinstance(entry[name], str):
                raise PredictionsError(f"{where}: field '{name}' must be a string, got {entry[name]!r}")
        if entry["id"] in predictions:
            raise PredictionsError(
                f"{where}: id {entry['id']!r} already appeared on line {first_line[entry['id']]}"
            )
        predictions[entry["id"]] = entry["prediction"]
        first_line[entry["id"]] = number
    return predictions


def write_predictions(path: str | Path, predictions: Mapping[str, str], append: bool = False) -> None:
    """Write (or append) predictions as JSON Lines, one ``{"id", "prediction"}`` object per line."""
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for sample_id, text in predictions.items():
            f.write(json.dumps({"id": sample_id, "prediction": text}, ensure_ascii=False) + "\n")


def score(task: str, samples: Sequence[Sample], predictions: Mapping[str, str]) -> dict[str, Any]:
    """Score ``predictions`` (``{sample id: text}``) on ``samples`` with the task's protocol.

    Only samples that have both a prediction and a reference answer are scored; the others are
    counted. Returns ``{"task", "counts": {"samples", "scored", "missing", "unknown",
    "without_reference"}, "metrics": {name: value ×100}}``, where ``missing`` counts samples
    without a prediction and ``unknown`` predictions whose id is not a sample's.
    """
    if task not in _PROTOCOLS:
        if task == "llava_video":
            raise ValueError("llava_video is training data: it has no evaluation protocol to score")
        raise ValueError(f"unknown task {task!r}; scorable tasks: {', '.join(SCORABLE_TASKS)}")
    known = {sample.id for sample in samples}
    unknown = [key for key in predictions if key not in known]
    with_reference = [s for s in samples if s.answers]
    scored = [s for s in with_reference if s.id in predictions]
    counts = {
        "samples": len(samples),
        "scored": len(scored),
        "missing": sum(1 for s in samples if s.id not in predictions),
        "unknown": len(unknown),
        "without_reference": len(samples) - len(with_reference),
    }
    if counts["missing"]:
        logger.warning(
            "%s: %d of %d samples have no prediction; scoring the rest", task, counts["missing"], len(samples)
        )
    if unknown:
        logger.warning(
            "%s: ignoring %d prediction(s) with unknown ids, e.g. %r", task, len(unknown), unknown[0]
        )
    if counts["without_reference"]:
        logger.warning(
            "%s: %d samples have no reference answer (hidden split?)", task, counts["without_reference"]
        )
    metrics = _PROTOCOLS[task](scored, [predictions[s.id] for s in scored]) if scored else {}
    return {
        "task": task,
        "counts": counts,
        "metrics": {name: float(100 * value) for name, value in metrics.items()},
    }


def format_report(result: dict) -> str:
    """The metrics of a :func:`score` result as a markdown table, counts (and cost, when the
    report has one) below."""
    counts = result["counts"]
    lines = [f"| {result['task']} | value |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in result["metrics"].items()]
    lines.append("")
    lines.append(
        f"{counts['scored']} of {counts['samples']} samples scored; {counts['missing']} without a prediction, "
        f"{counts['without_reference']} without a reference answer; {counts['unknown']} prediction(s) with unknown ids."
        + (f" {counts['skipped']} skipped: media or features unreadable (see 'skipped')." if counts.get("skipped") else "")
    )
    if "protocol" in result:
        protocol = result["protocol"]
        differs = "; ".join(protocol["deviations"]) or "none"
        lines.append(f"Protocol: {protocol['source']}. Settings that differ from it: {differs}.")
    if "cost" in result:
        cost = result["cost"]
        lines.append(
            f"Prefill TFLOPs {cost['tflops_total']:.4g} (LLM {cost['tflops_llm']:.4g}, patch {cost['tflops_patch']:.4g}); "
            f"parameters {cost['params_total']:,} total, {cost['params_trainable']:,} trained."
        )
    return "\n".join(lines)


Protocol = Callable[[list[Sample], list[str]], dict[str, float]]


def _choice(
    samples: list[Sample],
    predictions: list[str],
    extract: Callable[[str], str | None],
    macro: Sequence[str] = (),
) -> dict[str, float]:
    # No answer letter (an MLVU answer that is none of the options): wrong whatever is said.
    correct = [s.answer_letter is not None and extract(p) == s.answer_letter for s, p in zip(samples, predictions, strict=True)]
    return grouped_accuracy(correct, [s.groups for s in samples], macro=macro)


def _mvbench(samples: list[Sample], predictions: list[str]) -> dict[str, float]:
    # lmms-eval leaves empty outputs out of the denominator.
    kept = [(s, p) for s, p in zip(samples, predictions, strict=True) if p != ""]
    if len(kept) < len(samples):
        logger.info("mvbench: %d empty predictions left out of the accuracy", len(samples) - len(kept))
    if not kept:
        return {}
    return _choice([s for s, _ in kept], [p for _, p in kept], extract_letter_mvbench, macro=("task",))


def _music_avqa(samples: list[Sample], predictions: list[str]) -> dict[str, float]:
    correct = [s.answers[0].lower() in p.lower() for s, p in zip(samples, predictions, strict=True)]
    return grouped_accuracy(correct, [s.groups for s in samples])


def _egoexo(samples: list[Sample], predictions: list[str]) -> dict[str, float]:
    correct = [match_label(p, s.options) == s.answers[0] for s, p in zip(samples, predictions, strict=True)]
    return grouped_accuracy(correct, [s.groups for s in samples])


def _exact_match(samples: list[Sample], predictions: list[str]) -> dict[str, float]:
    matches = [exact_match(p, s.answers) for s, p in zip(samples, predictions, strict=True)]
    groups = [s.groups for s in samples]
    return {
        **grouped_accuracy([em for em, _ in matches], groups, name="EM@1"),
        **grouped_accuracy([refined for _, refined in matches], groups, name="EM@1 refined"),
    }


def _scanqa(samples: list[Sample], predictions: list[str]) -> dict[str, float]:
    # Caption metrics run on the cleaned strings, references also freed of newlines (LLaVA-3D).
    references = {s.id: [clean_answer(a).replace("\n", " ").strip() for a in s.answers] for s in samples}
    cleaned = {s.id: clean_answer(p) for s, p in zip(samples, predictions, strict=True)}
    return {**_exact_match(samples, predictions), **caption_metrics(references, cleaned)}


def _captions(samples: list[Sample], predictions: list[str]) -> dict[str, float]:
    return caption_metrics(
        {s.id: list(s.answers) for s in samples}, dict(zip([s.id for s in samples], predictions, strict=True))
    )


def _qa(samples: list[Sample], predictions: list[str]) -> dict[str, float]:
    """The generic task: each sample by its kind (see :mod:`pave.data.datasets.qa`)."""
    kinds = {"choice": [], "exact_match": [], "caption": []}
    for sample, prediction in zip(samples, predictions, strict=True):
        kinds["choice" if sample.options else sample.metric].append((sample, prediction))
    protocols = {"choice": partial(_choice, extract=extract_letter), "exact_match": _exact_match, "caption": _captions}
    metrics = {}
    for kind, pairs in kinds.items():
        if pairs:
            metrics.update(protocols[kind]([s for s, _ in pairs], [p for _, p in pairs]))
    return metrics


_PROTOCOLS: dict[str, Protocol] = {
    "avsd": _captions,
    "avqa": partial(_choice, extract=extract_letter),
    "music_avqa": _music_avqa,
    "scanqa": _scanqa,
    "sqa3d": _exact_match,
    "egoexo_proficiency": _egoexo,
    "videomme": partial(_choice, extract=extract_letter),
    "mvbench": _mvbench,
    "mlvu": partial(_choice, extract=extract_letter, macro=("task",)),
    "qa": _qa,
}

#: Task names :func:`score` accepts (every loader task but the training-only ``llava_video``).
SCORABLE_TASKS = tuple(_PROTOCOLS)
