"""The uniform sample record, the annotation-reading helpers every loader shares, and the registry.

Every benchmark module in this package exposes ``load(paths) -> list[Sample]`` that reads the
benchmark's *official* annotation files unchanged and returns one :class:`Sample` per question.
Media paths in a sample are relative to the benchmark's media root (documented per loader); use
:func:`missing_media` to list what is absent before running a model.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pave.files import NotUTF8Error, read_utf8

logger = logging.getLogger(__name__)

#: Task names accepted by :func:`get_loader` (and ``pave score --task``), one module each.
TASKS = (
    "avsd",
    "avqa",
    "music_avqa",
    "scanqa",
    "sqa3d",
    "egoexo_proficiency",
    "llava_video",
    "videomme",
    "mvbench",
    "mlvu",
    "qa",
)

#: Option letters, in order, for multiple-choice benchmarks (MVBench has up to five candidates).
LETTERS = "ABCDEFGH"

# Extensions tried when a referenced video is missing: VideoMME ships some clips as .MP4 or .mkv.
_VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv", ".webm")


class AnnotationError(ValueError):
    """An annotation file or one of its records does not have the documented shape.

    The message names the file, the record index (position in the file's record list) and the
    field, so the offending line can be found and fixed.
    """

    def __init__(
        self, location: str | Path, problem: str, *, index: int | None = None, field: str | None = None
    ):
        self.location = str(location)
        self.index = index
        self.field = field
        where = self.location
        if index is not None:
            where += f", record {index}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Sample:
    """One question of a benchmark, in the same shape for every benchmark.

    Attributes:
        id: unique within the loaded files; how it is derived is documented in each loader.
        task: the task name (one of :data:`TASKS`).
        source: ``"<annotation file name>#<record index>"`` the sample was read from.
        question: the question as the annotation states it (templates filled in).
        prompt: the text the reference pipeline feeds the model for this question (question,
            options and instructions, without the image token).
        answers: reference answers: every reference for free-form tasks, the correct option's
            text for multiple choice, the class label for classification; empty when the
            split's answers are hidden.
        options: multiple-choice candidates in order, without letter prefixes.
        answer_letter: the correct option's letter for multiple choice; None when the answer is
            none of the options (a few official MLVU records: always scored wrong).
        history: earlier (question, answer) turns of a dialog, oldest first.
        video: main video, relative to the benchmark's media root.
        clip: (start, end) seconds of ``video`` the question is about, when the benchmark says;
            key frames are sampled inside it.
        frame_rate: frames per second of ``video`` when it is a folder of frame images
            (MVBench's TVQA frames); None for video files.
        scene_id: ScanNet scene for 3D QA; frames live in ``<media root>/<scene_id>/``.
        exo_videos: extra camera views (Ego-Exo4D), relative to the media root.
        side_channels: side-channel kind (``audio``, ``video``, ``3d``, ``exo``, as ``pave
            extract`` names them) to the media it is extracted from (paths relative to the
            media root, or a scene id).
        groups: breakdown dimensions the benchmark reports accuracy by, e.g.
            ``{"duration": "short", "task_type": "OCR Problems"}``.
        metric: how a free-form answer is scored where the task leaves it to the data (the
            generic ``qa`` task: ``exact_match`` or ``caption``); None elsewhere.
    """

    id: str
    task: str
    source: str
    question: str
    prompt: str
    answers: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    answer_letter: str | None = None
    history: tuple[tuple[str, str], ...] = ()
    video: str | None = None
    clip: tuple[float, float] | None = None
    frame_rate: float | None = None
    scene_id: str | None = None
    exo_videos: tuple[str, ...] = ()
    side_channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)
    metric: str | None = None


@dataclass(frozen=True)
class MissingMedia:
    """A media file or scene folder a sample refers to that is not under the media root."""

    sample_id: str
    path: Path


Loader = Callable[[Sequence[Path]], list[Sample]]


def get_loader(task: str) -> Loader:
    """The ``load(paths)`` function of a benchmark, by task name (see :data:`TASKS`)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of: {', '.join(TASKS)}")
    return importlib.import_module(f"pave.data.datasets.{task}").load


def load_samples(task: str, paths: Sequence[str | Path]) -> list[Sample]:
    """Load a benchmark's annotation files and check that sample ids are unique."""
    if not paths:
        raise ValueError(f"{task}: no annotation files given")
    samples = get_loader(task)([Path(p) for p in paths])
    first_seen: dict[str, Sample] = {}
    for sample in samples:
        if sample.id in first_seen:
            raise AnnotationError(
                sample.source, f"sample id {sample.id!r} repeats the one from {first_seen[sample.id].source}"
            )
        first_seen[sample.id] = sample
    logger.info("%s: loaded %d samples from %d file(s)", task, len(samples), len(paths))
    return samples


def missing_media(samples: Iterable[Sample], media_root: str | Path) -> list[MissingMedia]:
    """List, per sample, every referenced video, exo view or scene folder absent under ``media_root``.

    Nothing is raised: the reference pipelines skip such samples, so callers decide. A missing
    video also counts as present when the same stem exists with another common video extension.
    """
    root = Path(media_root)
    missing = []
    for sample in samples:
        refs = [sample.video, *sample.exo_videos, sample.scene_id]
        for ref in refs:
            if ref is not None and not _exists(root / ref):
                missing.append(MissingMedia(sample.id, root / ref))
    return missing


def _exists(path: Path) -> bool:
    if path.exists():
        return True
    return path.suffix in _VIDEO_SUFFIXES and any(path.with_suffix(s).exists() for s in _VIDEO_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# Reading annotation files


_REQUIRED = object()


@dataclass(frozen=True)
class Record:
    """One annotation record with typed, error-reporting field access.

    ``prefix`` names the enclosing field for nested objects (``"dialog[3]."``), so errors point
    at the exact field.
    """

    path: Path
    index: int
    data: Mapping[str, Any]
    prefix: str = ""

    @property
    def source(self) -> str:
        return f"{self.path.name}#{self.index}"

    def error(self, name: str, problem: str) -> AnnotationError:
        return AnnotationError(self.path, problem, index=self.index, field=self.prefix + name)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
        """The field's value, checked to be of ``kind``; ``default`` when absent (if given)."""
        if name not in self.data or (self.data[name] is None and default is not _REQUIRED):
            if default is _REQUIRED:
                raise self.error(name, "missing")
            return default
        value = self.data[name]
        if not _is_kind(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {type(value).__name__} {_short(value)}")
        return value

    def text(self, name: str, default: Any = _REQUIRED) -> str:
        return self.get(name, str, default)

    def integer(self, name: str) -> int:
        return self.get(name, int)

    def number(self, name: str, default: Any = _REQUIRED) -> float:
        value = self.get(name, (int, float), default)
        return value if value is None else float(value)

    def texts(self, name: str, default: Any = _REQUIRED, *, min_len: int = 1) -> tuple[str, ...]:
        """A non-empty (at least ``min_len``) list of strings."""
        value = self.get(name, list, default)
        if value is default:
            return value
        if len(value) < min_len or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"expected a list of at least {min_len} string(s), got {_short(value)}")
        return tuple(value)

    def objects(self, name: str) -> list[Record]:
        """A non-empty list of objects, each as a nested :class:`Record`."""
        value = self.get(name, list)
        if not value:
            raise self.error(name, "expected a non-empty list")
        children = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error(f"{name}[{i}]", f"expected an object, got {_short(item)}")
            children.append(Record(self.path, self.index, item, f"{self.prefix}{name}[{i}]."))
        return children

    def mapping(self, name: str) -> Record:
        """An object field, as a nested :class:`Record`."""
        return Record(self.path, self.index, self.get(name, dict), f"{self.prefix}{name}.")

    def json_field(self, name: str, kind: type) -> Any:
        """A string field whose content is itself JSON (Music-AVQA encodes lists this way)."""
        raw = self.text(name)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise self.error(
                name, f"expected JSON-encoded {_kind_name(kind)} in the string, got {_short(raw)}"
            ) from exc
        if not _is_kind(value, kind):
            raise self.error(name, f"expected JSON-encoded {_kind_name(kind)}, got {_short(raw)}")
        return value

    def letter_of(
        self, options: Sequence[str], answer: str, name: str = "answer", *, last: bool = False, required: bool = True
    ) -> str | None:
        """The letter of ``answer`` among ``options`` (answer given as option text): of its first
        occurrence, or its ``last`` when the benchmark's scorer takes that one. An answer that is
        no option is an error, or None when not ``required`` (the scorer counts it wrong)."""
        if len(options) > len(LETTERS):
            raise self.error(name, f"at most {len(LETTERS)} options are supported, got {len(options)}")
        matches = [i for i, option in enumerate(options) if option == answer]
        if not matches:
            if required:
                raise self.error(name, f"{_short(answer)} is not one of the candidates {_short(list(options))}")
            logger.warning("%s, field '%s': %s is not one of the candidates", self.source, name, _short(answer))
            return None
        return LETTERS[matches[-1] if last else matches[0]]


def read_json(path: Path) -> Any:
    """Parse a JSON file, or a JSON Lines file (``.jsonl``: a list, one value per non-blank
    line), reporting the file and position of a syntax error."""
    try:
        text = read_utf8(path)
        if path.suffix != ".jsonl":
            return json.loads(text)
        lines = text.splitlines()
    except NotUTF8Error as exc:
        raise AnnotationError(path, exc.problem) from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            path, f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc
    values = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AnnotationError(path, f"line {number} is not valid JSON ({exc.msg})") from None
    return values


def read_records(path: Path, wrapper: str | None = None) -> list[Record]:
    """The records of an annotation file: a JSON list, or the list under ``wrapper`` in an object.

    ``.parquet`` files (VideoMME's official format) are read with pyarrow, one record per row.
    """
    if path.suffix == ".parquet":
        rows: Any = _read_parquet(path)
    else:
        rows = read_json(path)
        if isinstance(rows, dict) and wrapper is not None:
            if wrapper not in rows:
                raise AnnotationError(path, f"expected a list of records under the top-level key '{wrapper}'")
            rows = rows[wrapper]
    if not isinstance(rows, list):
        expected = "a list" + (f" or an object with key '{wrapper}'" if wrapper else "")
        raise AnnotationError(path, f"expected {expected} at the top level, got {type(rows).__name__}")
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise AnnotationError(path, f"expected an object, got {_short(row)}", index=i)
        records.append(Record(path, i, row))
    return records


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(f"reading {path} needs pyarrow: pip install pyarrow") from exc
    return pq.read_table(path).to_pylist()


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass, but a true/false in a count or id field is a malformed record.
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
