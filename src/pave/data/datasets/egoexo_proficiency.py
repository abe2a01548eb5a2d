"""Ego-Exo4D demonstrator proficiency estimation: one ego video plus four exo views, four classes.

Files: ``annotations/proficiency_demonstrator_val.json`` (PAVE reports on ``val``; ``_train``
loads too), an object whose ``annotations`` key holds the list of takes, each with ``take_uid``,
``scenario_name``, ``video_paths`` (``ego``, ``exo1``...``exo4``: paths relative to the download
folder) and ``proficiency_score`` (one of :data:`LEVELS`). Other keys are ignored.

Sample id: ``take_uid``. Groups: ``scenario`` (``scenario_name``). ``options`` lists the four
levels so that free-form answers can be mapped onto one of them.

Media root: the ``egoexo`` download folder. As PAVE does, every view points at the 448-pixel copy
the ``downscaled_takes/448`` part provides:
``takes/<take>/frame_aligned_videos/downscaled/448/<camera>.mp4``. The exo views are the
multi-view side channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from pave.data.datasets.base import Sample, read_records
from pave.data.datasets.protocol import TaskProtocol

LEVELS = ("Novice", "Early Expert", "Intermediate Expert", "Late Expert")
# The authors' question, the same for every take (their default evaluation and training text).
QUESTION = (
    "In this video, a human is performing an activity. Your goal is to evaluate the human's skill level "
    "based on their technique, consistency, and overall execution of the activity. You will classify the "
    "performance into one of the following levels: 1. Novice: Beginner-level performance with noticeable "
    "gaps in basic skills, understanding, or execution. 2. Early Expert: Competent performance showing solid "
    "foundational skills, but with room for refinement. 3. Intermediate Expert: Advanced performance "
    "demonstrating strong technical abilities and strategic understanding, but not yet at mastery. 4. Late "
    "Expert: Near-masterful or masterful performance, showcasing exceptional skill, precision, and expertise. "
    "Example Output: Early Expert"
)
PROTOCOL = TaskProtocol(source="authors' eval_pave_egoexo.py (dragonlzm/PAVE 4e38164), its default question")


def load(paths: Sequence[Path]) -> list[Sample]:
    samples = []
    for path in paths:
        for record in read_records(path, wrapper="annotations"):
            label = record.text("proficiency_score")
            if label not in LEVELS:
                raise record.error("proficiency_score", f"{label!r} is not one of {', '.join(LEVELS)}")
            views = record.mapping("video_paths")
            exo_keys = sorted(k for k in views.data if k.startswith("exo"))
            if not exo_keys:
                raise views.error("exo1", "missing: the take has no exo view")
            samples.append(
                Sample(
                    id=record.text("take_uid"),
                    task="egoexo_proficiency",
                    source=record.source,
                    question=QUESTION,
                    prompt=PROTOCOL.prompt(QUESTION),
                    answers=(label,),
                    options=LEVELS,
                    video=downscaled_view(views.text("ego")),
                    exo_videos=tuple(downscaled_view(views.text(k)) for k in exo_keys),
                    side_channels={"exo": tuple(downscaled_view(views.text(k)) for k in exo_keys)},
                    groups={"scenario": record.text("scenario_name")},
                )
            )
    return samples


def downscaled_view(path: str) -> str:
    """The 448-pixel copy of a view, which PAVE (and this loader, and `pave extract exo`) reads."""
    original = PurePosixPath(path)
    return str(original.parent / "downscaled" / "448" / original.name)
