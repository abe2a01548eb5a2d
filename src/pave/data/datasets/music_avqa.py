"""Music-AVQA (GeWu-Lab, CVPR 2022): open-ended answers from a closed vocabulary.

Files: ``avqa-test.json`` (also ``avqa-train.json``, ``avqa-val.json``; ``data/json/`` or the
revised ``data/json_update/``), a JSON list of records with ``video_id``, ``question_id``,
``type`` (a JSON-encoded ``[modality, type]`` list in a string), ``question_content`` (a template
with ``<...>`` placeholders), ``templ_values`` (JSON-encoded list of fill values, in order) and
``anser`` (the answer; the field name is misspelled in the official files).

Sample id: ``"<question_id>@<record index>"``. ``question_id`` alone is **not** unique (the test
file repeats ids with different answers), so the record's position in its file is appended.
Groups: ``modality`` (``Audio``, ``Visual``, ``Audio-Visual``) and ``type``
(``"<modality>/<type>"``, e.g. ``Audio/Counting``), the official breakdown.

Media root: the folder holding both video archives; ids starting with a digit are real videos
(``MUSIC-AVQA-videos-Real/<video_id>.mp4``), the others synthetic
(``MUSIC-AVQA-videos-Synthetic/<video_id>.mp4``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import Record, Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

PROTOCOL = TaskProtocol(source="authors' eval_pave_music_avqa.py: the filled-in question alone")
_PLACEHOLDER = re.compile(r"<[^<>]*>")


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        for record in read_records(path):
            modality, qtype = _type_of(record)
            video_id = record.text("video_id")
            folder = "MUSIC-AVQA-videos-Real" if video_id[:1].isdigit() else "MUSIC-AVQA-videos-Synthetic"
            video = f"{folder}/{video_id}.mp4"
            question = _fill_template(record)
            samples.append(
                Sample(
                    id=f"{record.integer('question_id')}@{record.index}",
                    task="music_avqa",
                    source=record.source,
                    question=question,
                    prompt=PROTOCOL.prompt(question),
                    answers=(record.text("anser"),),
                    video=video,
                    side_channels={"audio": (video,)},
                    groups={"modality": modality, "type": f"{modality}/{qtype}"},
                )
            )
    return samples


def _type_of(record: Record) -> tuple[str, str]:
    value = record.json_field("type", list)
    if len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise record.error("type", f"expected a [modality, type] pair, got {value!r}")
    return value[0], value[1]


def _fill_template(record: Record) -> str:
    """Replace each ``<...>`` placeholder, left to right, with the next template value."""
    template = record.text("question_content")
    values = record.json_field("templ_values", list)
    slots = _PLACEHOLDER.findall(template)
    if len(slots) != len(values):
        raise record.error(
            "templ_values", f"{len(values)} value(s) for {len(slots)} placeholder(s) in {template!r}"
        )
    fills = iter(str(v) for v in values)
    return _PLACEHOLDER.sub(lambda _: next(fills), template)
