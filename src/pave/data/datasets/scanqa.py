"""ScanQA (ScanNet v2 scenes): free-form answers with several references.

Files: ``ScanQA_v1.0_val.json`` (PAVE reports on ``val``; ``_train``, ``_test_w_obj`` and
``_test_wo_obj`` load too), a JSON list of records with ``question_id`` (e.g.
``"val-scene0011-0"``), ``scene_id``, ``question`` and ``answers`` (list; absent in the test files,
whose answers are hidden). ``object_ids``/``object_names`` are not needed and not required.

Sample id: ``question_id``. The prompt is the raw question, as in PAVE.

Media root: one folder per scene with its posed RGB-D frames, ``<media root>/<scene_id>/``; the
3D side channel is derived from that scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

PROTOCOL = TaskProtocol(source="authors' eval_pave_scanqa.py: the question alone, no instruction")


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        for record in read_records(path):
            scene_id = record.text("scene_id")
            question = record.text("question")
            samples.append(
                Sample(
                    id=record.text("question_id"),
                    task="scanqa",
                    source=record.source,
                    question=question,
                    prompt=PROTOCOL.prompt(question),
                    answers=record.texts("answers", ()),
                    scene_id=scene_id,
                    side_channels={"3d": (scene_id,)},
                )
            )
    return samples
