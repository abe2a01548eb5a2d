"""AVSD (Audio-Visual Scene-aware Dialog): dialogues about Charades videos, in either layout.

**DSTC layout** (the test file PAVE reports on, ``mock_test_set4DSTC10-AVSD_from_DSTC7_singref.json``
from the AVSD@DSTC10 release, and every DSTC7/DSTC10 file of the same schema): the top level is
``{"dialogs": [...]}``; each dialog has ``image_id`` (Charades video id) and ``dialog``, a list of
``{"question", "answer"}`` turns whose **last** turn is the one to answer. One sample per dialog,
id ``image_id``; ``history`` holds the earlier turns. A last answer of ``__UNDISCLOSED__`` (the
original DSTC7 test file) leaves ``answers`` empty.

**AVSD v1.0 layout** (``avsd_train.json`` / ``avsd_val.json``, the files the authors train on):
an object keyed by Charades video id, each value with ``data``, a list of ``{"question",
"answer"}`` turns (ten per video). As the authors convert it, each dialogue is cut into
consecutive chunks of :data:`TURNS_PER_SAMPLE` turns (a shorter remainder is dropped), one sample per chunk with id
``<video id>_<chunk index>``: the chunk's last turn is the question, the others its ``history``,
and training supervises every answer of the chunk.

Other keys (``caption``, ``summary``, ``script``...) are ignored.

Media root: the Charades videos; ``video`` is ``<video id>.mp4`` and the audio side channel is
that file's audio track.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import AnnotationError, Record, Sample, read_json, read_records
from pave.data.datasets.protocol import TaskProtocol

_HIDDEN_ANSWER = "__UNDISCLOSED__"
PROTOCOL = TaskProtocol(source="authors' eval_pave_avsd.py: earlier turns as chat turns, then the last question")
#: Turns per training sample when a v1.0 dialogue is cut into chunks (the authors' conversion).
TURNS_PER_SAMPLE = 5


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        data = read_json(path)
        if isinstance(data, dict) and "dialogs" not in data:
            samples += _v1_samples(path, data)
            continue
        for record in read_records(path, wrapper="dialogs"):
            samples.append(_sample(record, record.text("image_id"), _turns(record, "dialog")))
    return samples


def _v1_samples(path: Path, data: dict) -> list[Sample]:
    samples = []
    for index, (video_id, value) in enumerate(data.items()):
        if not isinstance(value, dict):
            raise AnnotationError(
                path, f"video {video_id!r}: expected an object with 'data' (AVSD v1.0 layout) or a "
                "top-level 'dialogs' list (DSTC layout)", index=index,
            )
        record = Record(path, index, value)
        turns = _turns(record, "data")
        for chunk in range(len(turns) // TURNS_PER_SAMPLE):  # a shorter remainder is dropped, as theirs is
            start = chunk * TURNS_PER_SAMPLE
            samples.append(_sample(record, video_id, turns[start : start + TURNS_PER_SAMPLE], f"{video_id}_{chunk}"))
    return samples


def _turns(record: Record, name: str) -> list[tuple[str, str]]:
    return [(turn.text("question"), turn.text("answer")) for turn in record.objects(name)]


def _sample(record: Record, video_id: str, turns: list[tuple[str, str]], sample_id: str | None = None) -> Sample:
    question, answer = turns[-1]
    video = f"{video_id}.mp4"
    return Sample(
        id=sample_id or video_id,
        task="avsd",
        source=record.source,
        question=question,
        prompt=PROTOCOL.prompt(question),
        answers=() if answer == _HIDDEN_ANSWER else (answer,),
        history=tuple(turns[:-1]),
        video=video,
        side_channels={"audio": (video,)},
    )
