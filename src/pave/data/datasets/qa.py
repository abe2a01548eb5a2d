"""Your own data: questions about videos, in a plain JSON (or JSON Lines) file.

Each record::

    {"video": "clips/cat.mp4",                  # relative to the media root (required)
     "question": "What does the cat do?",       # (required)
     "answer": "It jumps." | ["It jumps.", ...] # reference answer(s); omit for unlabelled data
     "choices": ["sleeps", "jumps", "eats"],    # optional: multiple choice; the answer is one
                                                #   of the choices (text) or its letter
     "id": "cat-1",                             # optional; default "<file stem>-<record index>"
     "metric": "exact_match" | "caption",       # optional, free-form answers only (default exact_match)
     "conversation": [{"question": ..., "answer": ...}, ...],  # optional earlier turns
     "side": {"audio": "clips/cat.wav"},        # optional: media of a side channel, by name
     "group": "indoor"}                         # optional: accuracy is also reported per group

A file may be a JSON list of such records, an object with them under ``"questions"``, or JSON
Lines (one record per line). Scoring (``pave eval`` / ``pave score --task qa``): multiple-choice
questions by the option letter in the answer (lmms-eval's rule), free-form ones by exact match
(EM@1 and refined EM, as ScanQA/SQA3D) or, with ``"metric": "caption"``, by CIDEr, BLEU-4, METEOR
and ROUGE-L. Side channels default to the video file itself (its audio track, its dense frames),
so ``pave extract audio --inputs FILE`` finds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pave.data.datasets.base import LETTERS, Record, Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

PROTOCOL = TaskProtocol(
    choice_template="{question}\n{options}\nAnswer with the option's letter from the given choices directly.",
    max_new_tokens=64,
    source="pave's own: the question as written; choices as lmms-eval's multiple-choice tasks put them",
)
METRICS = ("exact_match", "caption")


def load(paths: Sequence[Path]) -> list[Sample]:
    return [_sample(record) for path in paths for record in read_records(path, wrapper="questions")]


def _sample(record: Record) -> Sample:
    question = record.text("question")
    answers = _answers(record)
    choices = record.texts("choices", None, min_len=2)
    letter = None
    if choices is not None:
        if len(choices) > len(LETTERS):
            raise record.error("choices", f"at most {len(LETTERS)} choices are supported, got {len(choices)}")
        if len(answers) > 1:
            raise record.error("answer", "a multiple-choice question has one answer")
        if answers:
            given = answers[0]
            letter = given if given in LETTERS[: len(choices)] else record.letter_of(choices, given)
            answers = (choices[LETTERS.index(letter)],)
    metric = record.text("metric", None)
    if metric is not None and (metric not in METRICS or choices is not None):
        allowed = "none (the choices decide)" if choices is not None else f"one of {METRICS}"
        raise record.error("metric", f"expected {allowed}, got {metric!r}")
    video = record.text("video")
    side = {"audio": (video,), "video": (video,)}
    given = record.mapping("side") if "side" in record.data else None
    for name, media in given.data.items() if given else ():
        side[name] = (given.text(name),) if isinstance(media, str) else given.texts(name)
    group = record.text("group", None)
    return Sample(
        id=_identifier(record),
        task="qa",
        source=record.source,
        question=question,
        prompt=PROTOCOL.prompt(question, choices or ()),
        answers=answers,
        options=choices or (),
        answer_letter=letter,
        history=tuple((t.text("question"), t.text("answer")) for t in record.objects("conversation"))
        if "conversation" in record.data
        else (),
        video=video,
        side_channels=side,
        groups={"group": group} if group else {},
        metric=None if choices else metric or "exact_match",
    )


def _answers(record: Record) -> tuple[str, ...]:
    value = record.get("answer", (str, list), None)
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else record.texts("answer")


def _identifier(record: Record) -> str:
    value = record.get("id", (str, int), None)
    return f"{record.path.stem}-{record.index}" if value is None else str(value)
