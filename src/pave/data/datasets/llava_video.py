"""LLaVA-Video-178K open-ended QA: the training data of PAVE's enhanced-video experiments.

Files: ``<bucket>_<source>_v0_1/<bucket>_<source>_oe_v0_1_qa_processed.json`` (PAVE uses the
buckets ``1_2_m`` and ``2_3_m`` of the ``academic`` and ``youtube`` sources), each a JSON list of
records in LLaVA's conversation format: ``id`` (the **video** id, repeated across that video's
records), ``video`` (path relative to the bucket folder), ``data_source`` (the bucket folder
name) and ``conversations`` (alternating ``{"from": "human"|"gpt", "value"}`` turns, the first
human turn prefixed with ``<image>\\n``).

Sample id: ``"<id>#<k>"``, the k-th record (from 0, in file order across the files given) of that
video. The last turn pair becomes ``question``/``answers``; earlier pairs go to ``history``.
Groups: ``duration``, the bucket (``1_2_m`` ...). A record without ``data_source`` takes the
name of the folder holding its annotation file.

Media root: the dataset folder holding the bucket folders; ``video`` is
``<data_source>/<video>``, also the source of the dense-video side channel.

:func:`training_subset` (``pave subset``) makes the paper's training subset of the files.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import Record, Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

PROTOCOL = TaskProtocol(source="authors' training data: the human turns as written, <image> removed")
#: Buckets of videos longer than one minute: the paper trains on these only.
LONG_BUCKETS = ("1_2_m", "2_3_m")
_BUCKET = re.compile(r"^(\d+_\d+_[sm])_")
_IMAGE_TOKEN = re.compile(r"<image>\s*")


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    seen: Counter[str] = Counter()
    for path in paths:
        for record in read_records(path):
            video_id = record.text("id")
            data_source = record.text("data_source", path.parent.name)
            turns = _turns(record)
            match = _BUCKET.match(data_source)
            video = f"{data_source}/{record.text('video')}"
            question, answer = turns[-1]
            samples.append(
                Sample(
                    id=f"{video_id}#{seen[video_id]}",
                    task="llava_video",
                    source=record.source,
                    question=question,
                    prompt=PROTOCOL.prompt(question),
                    answers=(answer,),
                    history=tuple(turns[:-1]),
                    video=video,
                    side_channels={"video": (video,)},
                    groups={"duration": match.group(1)} if match else {},
                )
            )
            seen[video_id] += 1
    return samples


def training_subset(paths: Sequence[Path], per_video: int = 2, buckets: Sequence[str] = LONG_BUCKETS) -> list[dict]:
    """The paper's training subset, as the authors made it: of the videos longer than a minute
    (the ``buckets``), the first ``per_video`` records of each video id, in file order.

    Returns the records themselves (each with its ``data_source``), ready to be written as one
    annotation file that :func:`load` reads (``pave subset``). Every record is checked as
    :func:`load` checks it first.
    """
    load(paths)
    kept: list[dict] = []
    taken: Counter[str] = Counter()
    for path in paths:
        for record in read_records(path):
            data_source = record.text("data_source", path.parent.name)
            match = _BUCKET.match(data_source)
            video_id = record.text("id")
            if match and match.group(1) in buckets and taken[video_id] < per_video:
                kept.append({**record.data, "data_source": data_source})
                taken[video_id] += 1
    return kept


def _turns(record: Record) -> list[tuple[str, str]]:
    """The conversation as (question, answer) pairs, the image token removed."""
    messages = record.objects("conversations")
    if len(messages) % 2:
        raise record.error("conversations", f"expected human/gpt pairs, got {len(messages)} turns")
    pairs = []
    for k in range(0, len(messages), 2):
        human, gpt = messages[k], messages[k + 1]
        for message, role in ((human, "human"), (gpt, "gpt")):
            if message.text("from") != role:
                raise message.error("from", f"expected {role!r}, got {message.text('from')!r}")
        pairs.append((_IMAGE_TOKEN.sub("", human.text("value"), count=1).strip(), gpt.text("value")))
    return pairs
