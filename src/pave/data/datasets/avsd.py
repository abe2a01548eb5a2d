"""AVSD (Audio-Visual Scene-aware Dialog) in the DSTC schema: the DSTC7 test dialogs PAVE reports on.

Files: ``mock_test_set4DSTC10-AVSD_from_DSTC7_singref.json`` from the AVSD@DSTC10 release (the DSTC7
test dialogs with one reference each); any DSTC7/DSTC10 file of the same schema also loads. The
top level is ``{"dialogs": [...]}``; each dialog has ``image_id`` (Charades video id) and
``dialog``, a list of ``{"question", "answer"}`` turns whose **last** turn is the one to answer.
Other keys (``caption``, ``summary``, ...) are ignored.

Sample id: ``image_id`` (one dialog per video). ``history`` holds the earlier turns. A last answer
of ``__UNDISCLOSED__`` (the original DSTC7 test file) leaves ``answers`` empty.

Media root: the Charades test videos; ``video`` is ``<image_id>.mp4`` and the audio side channel
is that file's audio track.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import Sample, read_records

_HIDDEN_ANSWER = "__UNDISCLOSED__"


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        for record in read_records(path, wrapper="dialogs"):
            image_id = record.text("image_id")
            turns = [(turn.text("question"), turn.text("answer")) for turn in record.objects("dialog")]
            question, answer = turns[-1]
            video = f"{image_id}.mp4"
            samples.append(
                Sample(
                    id=image_id,
                    task="avsd",
                    source=record.source,
                    question=question,
                    prompt=question,
                    answers=() if answer == _HIDDEN_ANSWER else (answer,),
                    history=tuple(turns[:-1]),
                    video=video,
                    side_channels={"audio": (video,)},
                )
            )
    return samples
