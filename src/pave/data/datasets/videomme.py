"""VideoMME: four-way multiple choice over short, medium and long videos.

Files: ``videomme/test-00000-of-00001.parquet`` from the ``lmms-lab/Video-MME`` dataset (reading it
needs pyarrow); a JSON list of the same rows loads too. Columns used: ``question_id`` (e.g.
``"001-1"``), ``videoID`` (YouTube id), ``duration`` (``short``/``medium``/``long``), ``domain``,
``task_type``, ``question``, ``options`` (four strings already prefixed ``"A. "``...) and
``answer`` (a letter). Other columns are ignored.

Sample id: ``question_id``. Groups: ``duration``, ``domain``, ``task_type``. The prompt is
lmms-eval's (late 2024) without subtitles, as PAVE reports.

Media root: the folder holding ``data/`` from the ``videos_chunked_*.zip`` archives; ``video`` is
``data/<videoID>.mp4`` (``.MP4``/``.mkv`` copies are accepted). The dense-video side channel is
the same file sampled at 2 fps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import LETTERS, Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

# The options come labelled ("A. ..."), so they go into the prompt as they are.
PROTOCOL = TaskProtocol(
    template=(
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\n{question}\n{options}\n\n"
        "Answer with the option's letter from the given choices directly."
    ),
    option="{text}",
    max_new_tokens=16,
    source="lmms-eval videomme (Jan 2025) as the authors ran it: videomme_doc_to_text, no subtitles",
)
_LETTER_PREFIX = re.compile(r"^[A-H]\.\s*")


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        for record in read_records(path):
            labelled = record.texts("options", min_len=2)
            letter = record.text("answer").strip()
            if letter not in LETTERS[: len(labelled)]:
                raise record.error(
                    "answer", f"expected a letter among the {len(labelled)} options, got {letter!r}"
                )
            question = record.text("question")
            video = f"data/{record.text('videoID')}.mp4"
            options = tuple(_LETTER_PREFIX.sub("", option) for option in labelled)
            samples.append(
                Sample(
                    id=record.text("question_id"),
                    task="videomme",
                    source=record.source,
                    question=question,
                    prompt=PROTOCOL.prompt(question, labelled),
                    answers=(options[LETTERS.index(letter)],),
                    options=options,
                    answer_letter=letter,
                    video=video,
                    side_channels={"video": (video,)},
                    groups={name: record.text(name) for name in ("duration", "domain", "task_type")},
                )
            )
    return samples
