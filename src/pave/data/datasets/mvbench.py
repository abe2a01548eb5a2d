"""MVBench: 20 multiple-choice video tasks with two to five candidates.

Files: ``json/<task>.json`` from ``OpenGVLab/MVBench``, one per task (the file stem names the
task; see :data:`VIDEO_FOLDERS`), each a JSON list of records with ``video``, ``question``,
``candidates`` and ``answer`` (the correct candidate's text); five tasks add ``start``/``end``
(seconds), kept as ``clip``: key frames are sampled inside that window, as the official
evaluation does (and as the pre-cut ``*_segment`` clips of the late-2024 lmms-eval were).

Sample id: ``"<task>/<record index>"``: MVBench has no question ids, so the record's position in
its task file stands in. Groups: ``task``. The prompt is lmms-eval's (late 2024).

Media root: the dataset's ``video/`` folder; ``video`` is ``<task folder>/<video>`` with the task
folders of the official evaluation code. ``episodic_reasoning`` points at folders of frames
taken at 3 fps (``frame_rate``), read as a video of those frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import AnnotationError, Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

VIDEO_FOLDERS = {
    "action_sequence": "star/Charades_v1_480",
    "action_prediction": "star/Charades_v1_480",
    "action_antonym": "ssv2_video",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "unexpected_action": "FunQA_test/test",
    "object_existence": "clevrer/video_validation",
    "object_interaction": "star/Charades_v1_480",
    "object_shuffle": "perception/videos",
    "moving_direction": "clevrer/video_validation",
    "action_localization": "sta/sta_video",
    "scene_transition": "scene_qa/video",
    "action_count": "perception/videos",
    "moving_count": "clevrer/video_validation",
    "moving_attribute": "clevrer/video_validation",
    "state_change": "perception/videos",
    "fine_grained_pose": "nturgbd",
    "character_order": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "episodic_reasoning": "tvqa/frames_fps3_hq",
    "counterfactual_inference": "clevrer/video_validation",
}
PROTOCOL = TaskProtocol(
    template="Question:{question}\nOption:\n{options}Only give the best option.\n",
    option="({letter}) {text}\n",
    option_separator="",
    max_new_tokens=16,
    source="lmms-eval mvbench (Jan 2025); the authors' release has no MVBench code of its own",
)
#: Tasks whose ``video`` is a folder of frame images, and its frames per second.
FRAME_FOLDER_RATES = {"episodic_reasoning": 3.0}


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        task = path.stem
        if task not in VIDEO_FOLDERS:
            raise AnnotationError(
                path,
                f"unknown MVBench task file; expected <task>.json with task one of {sorted(VIDEO_FOLDERS)}",
            )
        for record in read_records(path):
            options = record.texts("candidates", min_len=2)
            answer = record.text("answer")
            letter = record.letter_of(options, answer)
            question = record.text("question")
            start, end = record.number("start", None), record.number("end", None)
            samples.append(
                Sample(
                    id=f"{task}/{record.index}",
                    task="mvbench",
                    source=record.source,
                    question=question,
                    prompt=PROTOCOL.prompt(question, options),
                    answers=(answer,),
                    options=options,
                    answer_letter=letter,
                    video=f"{VIDEO_FOLDERS[task]}/{record.text('video')}",
                    clip=None if start is None or end is None else (start, end),
                    frame_rate=FRAME_FOLDER_RATES.get(task),
                    groups={"task": task},
                )
            )
    return samples
