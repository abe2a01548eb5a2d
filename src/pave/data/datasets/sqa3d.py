"""SQA3D (situated QA on ScanNet): one reference answer, scored by exact match per question type.

Two official layouts load:

* the balanced release (``sqa_task/balanced/``): ``v1_balanced_questions_<split>_scannetv2.json``
  (``{"questions": [...]}`` with ``question_id``, ``scene_id``, ``situation``, ``question``) **and**
  ``v1_balanced_sqa_annotations_<split>_scannetv2.json`` (``{"annotations": [...]}`` with
  ``question_id`` and ``answers``, a list of ``{"answer", ...}``; the first one is the reference),
  joined on ``question_id``. Pass ``sqa_task/answer_dict.json`` as well to replace answers outside
  the answer vocabulary by ``"unknown"``, exactly as the ScanQA-format files do;
* the ScanQA-format files PAVE reads (``SQA_<split>.json``, from ``ScanQA_format.zip`` or the
  SQA3D converter): a JSON list with ``question_id``, ``scene_id``, ``situation``, ``question``
  and ``answers`` (one string).

Sample id: ``str(question_id)``. The prompt is ``situation + " " + question`` (PAVE, LLaVA-3D).
Groups: ``type``, the LLaVA-3D question type from the question's first word (case-sensitive):
``What``, ``Is``, ``How``, ``Can``, ``Which``, anything else ``Others`` (their types 0 to 5).
PAVE reports on the ``test`` split.

Media root: one folder per scene, ``<media root>/<scene_id>/``, as for ScanQA.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import AnnotationError, Record, Sample, read_json, read_records
from pave.data.datasets.protocol import TaskProtocol

PROTOCOL = TaskProtocol(source="authors' eval_pave_sqa3d.py: situation + ' ' + question, no instruction")
QUESTION_TYPES = ("What", "Is", "How", "Can", "Which")
OTHER_TYPE = "Others"
UNKNOWN_ANSWER = "unknown"


def load(paths: Sequence[Path]) -> list[Sample]:
    questions: list[Record] = []
    answers: dict[int, str] = {}
    vocabulary: set[str] | None = None
    samples = []
    for path in paths:
        if path.name == "answer_dict.json":
            vocabulary = _vocabulary(path)
            continue
        top = read_json(path)
        if isinstance(top, dict) and "questions" in top:
            questions.extend(read_records(path, wrapper="questions"))
        elif isinstance(top, dict) and "annotations" in top:
            for record in read_records(path, wrapper="annotations"):
                answers[record.integer("question_id")] = record.objects("answers")[0].text("answer")
        else:
            for record in read_records(path):
                reference = record.texts("answers")[0]
                samples.append(_sample(record, reference))
    for record in questions:
        qid = record.integer("question_id")
        if qid not in answers:
            raise record.error("question_id", f"{qid} has no entry in the annotations file(s) given")
        reference = answers[qid]
        if vocabulary is not None and reference not in vocabulary:
            reference = UNKNOWN_ANSWER
        samples.append(_sample(record, reference))
    return samples


def question_type(question: str) -> str:
    """LLaVA-3D's SQA3D question type: the first space-separated word, if it is a known one."""
    first = question.split(" ")[0]
    return first if first in QUESTION_TYPES else OTHER_TYPE


def _sample(record: Record, reference: str) -> Sample:
    scene_id = record.text("scene_id")
    question = record.text("question")
    return Sample(
        id=str(record.integer("question_id")),
        task="sqa3d",
        source=record.source,
        question=question,
        prompt=PROTOCOL.prompt(f"{record.text('situation')} {question}"),
        answers=(reference,),
        scene_id=scene_id,
        side_channels={"3d": (scene_id,)},
        groups={"type": question_type(question)},
    )


def _vocabulary(path: Path) -> set[str]:
    """The answers of ``answer_dict.json``: ``[answer -> class, class -> answer]``."""
    top = read_json(path)
    if not (isinstance(top, list) and len(top) == 2 and isinstance(top[0], dict)):
        raise AnnotationError(path, "expected [answer->class, class->answer] (two objects)")
    return set(top[0])
