"""MLVU (dev): seven multiple-choice long-video tasks.

Files: the official ``data/1_plotQA.json``, ``2_needle.json``, ``3_ego.json``, ``4_count.json``,
``5_order.json``, ``6_anomaly_reco.json``, ``7_topic_reasoning.json`` (the generation tasks
``8_sub_scene``/``9_summary`` have no candidates and are rejected), each a JSON list of records
with ``video``, ``question``, ``candidates``, ``answer`` (the correct candidate's text) and
``question_type``. A record whose answer is none of its candidates (two in ``2_needle.json``)
is kept with a warning and scored wrong, as the official scorer does; when a candidate text
repeats, the answer is the last one, again as that scorer decides.

Sample id: ``"<file stem>/<record index>"`` (e.g. ``1_plotQA/12``): the files have no question
ids. Groups: ``task`` (``question_type``). The prompt lists the options as ``(A) ...`` and ends
with lmms-eval's (late 2024) ``Best option: (``.

Media root: the dataset's ``video/`` folder, one sub-folder per task named after the file stem
without its number (``plotQA``, ``needle``, ...): ``video`` is ``<task folder>/<video>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

PROTOCOL = TaskProtocol(
    template="\nQuestion: {question}\nOptions:\n{options}\nOnly give the best option.\n\nBest option: (",
    option="({letter}) {text}",
    max_new_tokens=16,
    source="lmms-eval mlvu (late 2024); the authors' MLVU setup is not in their release",
)


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        folder = path.stem.split("_", 1)[-1]
        for record in read_records(path):
            options = record.texts("candidates", min_len=2)
            answer = record.text("answer")
            # As the official scorer: the last candidate equal to the answer; an answer that is no
            # candidate (two records of 2_needle.json) is kept and counts as wrong.
            letter = record.letter_of(options, answer, last=True, required=False)
            question = record.text("question")
            samples.append(
                Sample(
                    id=f"{path.stem}/{record.index}",
                    task="mlvu",
                    source=record.source,
                    question=question,
                    prompt=PROTOCOL.prompt(question, options),
                    answers=(answer,),
                    options=options,
                    answer_letter=letter,
                    video=f"{folder}/{record.text('video')}",
                    groups={"task": record.text("question_type")},
                )
            )
    return samples
