"""AVQA (Yang et al., ACM MM 2022): four-way multiple choice on VGGSound clips.

Files: ``train_qa.json`` and ``val_qa.json`` (PAVE evaluates on ``val``), each a JSON list of
records with ``id`` (int), ``video_name``, ``question_text``, ``multi_choice`` (option texts),
``answer`` (index into ``multi_choice``), ``question_type`` and, optionally,
``question_relation``. Other keys are ignored.

Sample id: ``str(id)``. Groups: ``question_type`` (and ``question_relation`` when present).

Media root: the VGGSound clips; ``video`` is ``<video_name>.mp4``, its audio track the side channel.
The prompt follows PAVE's evaluation script.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import LETTERS, Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

PROTOCOL = TaskProtocol(
    template=(
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\n{question}\n{options}\n"
        "Answer with the option's letter from the given choices directly."
    ),
    option="{letter}.{text}",
    source="authors' eval_pave_avqa.py (its start prompt names subtitles, which AVQA does not have)",
)


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        for record in read_records(path):
            options = record.texts("multi_choice", min_len=2)
            answer = record.integer("answer")
            if not 0 <= answer < len(options):
                raise record.error("answer", f"index {answer} is outside the {len(options)} options")
            question = record.text("question_text")
            groups = {"question_type": record.text("question_type")}
            relation = record.text("question_relation", None)
            if relation is not None:
                groups["question_relation"] = relation
            video = f"{record.text('video_name')}.mp4"
            samples.append(
                Sample(
                    id=str(record.integer("id")),
                    task="avqa",
                    source=record.source,
                    question=question,
                    prompt=PROTOCOL.prompt(question, options),
                    answers=(options[answer],),
                    options=options,
                    answer_letter=LETTERS[answer],
                    video=video,
                    side_channels={"audio": (video,)},
                    groups=groups,
                )
            )
    return samples
