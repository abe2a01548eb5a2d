"""Offline extraction of side channels into a :class:`~pave.sidechannels.store.FeatureStore`.

Items come from a folder, a list file or an annotation file (:func:`discover_items`). Each item
is encoded once and written atomically; a rerun skips the items already in the store, so a
killed run resumes where it stopped. An item that fails is logged and skipped, and the summary
lists it.

Workers are threads sharing one encoder: decoding (FFmpeg) and torch kernels release the GIL, a
vision tower is loaded once instead of once per process, and nothing needs pickling between
processes. Torch's intra-op threads are divided among the workers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from pave.data.datasets.base import read_json
from pave.data.datasets.egoexo_proficiency import downscaled_view
from pave.data.media import AUDIO_SUFFIXES, VIDEO_SUFFIXES
from pave.files import read_utf8
from pave.sidechannels import released
from pave.sidechannels.base import KINDS, get_encoder
from pave.sidechannels.store import FeatureStore

logger = logging.getLogger(__name__)

# Annotation fields that name an item's media, in the order they are tried: LLaVA-style and
# MVBench/MLVU `video`, Ego-Exo4D `video_paths`, ScanQA/SQA3D `scene_id`, AVQA `video_name`,
# Music-AVQA `video_id`, AVSD `image_id`.
MEDIA_FIELDS = ("video", "video_paths", "scene_id", "video_name", "video_id", "image_id")
# Annotation files that wrap their list of records in an object.
WRAPPER_KEYS = ("annotations", "dialogs", "questions")
# Seconds between rewrites of index.json during a run (item files are always written at once).
FLUSH_INTERVAL = 10.0


@dataclass(frozen=True)
class Item:
    """One unit of extraction: its id in the store and its media (one path; the views for exo)."""

    id: str
    paths: tuple[Path, ...]

    @property
    def source(self) -> str:
        return os.pathsep.join(str(p) for p in self.paths)


@dataclass
class Summary:
    """What a run did. ``failed`` maps item id to the error message."""

    total: int
    extracted: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def media_item_id(rel: str) -> str:
    """The store id of one media file: its path without a video suffix (other suffixes stay)."""
    path = Path(rel)
    return path.with_suffix("").as_posix() if path.suffix in VIDEO_SUFFIXES else path.as_posix()


def _resolve_media(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name.<video suffix>`` when annotations give a bare id."""
    path = root / name
    if path.exists():
        return path
    return next((root / f"{name}{s}" for s in VIDEO_SUFFIXES if (root / f"{name}{s}").exists()), path)


def _items_from_folder(kind: str, folder: Path) -> list[Item]:
    if kind == "3d":  # scans: folders holding color/
        roots = sorted(p.parent for p in folder.rglob("color") if p.is_dir())
        return [Item(r.relative_to(folder).as_posix() or r.name, (r,)) for r in roots]
    suffixes = VIDEO_SUFFIXES + (AUDIO_SUFFIXES if kind == "audio" else ())
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if kind == "exo":  # one item per folder of view videos
        dirs = sorted({v.parent for v in videos})
        views = {d: [v.relative_to(folder).as_posix() for v in videos if v.parent == d] for d in dirs}
        return [Item(item_id(views[d]), (d,)) for d in dirs]
    return [Item(media_item_id(v.relative_to(folder).as_posix()), (v,)) for v in videos]


def _items_of_released(kind: str, folder: Path) -> list[Item]:
    """The authors' feature files under ``folder``, named as the media they were extracted from
    (see :mod:`pave.sidechannels.released`)."""
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: give the folder of the authors' {released.SUFFIX} feature files")
    files = sorted(p for p in folder.rglob(f"*{released.SUFFIX}") if p.is_file())
    if kind == "3d":  # <scene>/video_features.pt
        scenes = [p.parent for p in files if p.name == released.SCENE_FILE]
        return [Item(s.relative_to(folder).as_posix() or s.name, (s / released.SCENE_FILE,)) for s in scenes]
    if kind == "exo":  # a folder of views, <camera>.pt each, stands for the views' videos
        dirs = sorted({f.parent for f in files})
        views = {d: [f"{f.relative_to(folder).with_suffix('').as_posix()}.mp4" for f in files if f.parent == d] for d in dirs}
        return [Item(item_id(views[d]), (d,)) for d in dirs]
    return [Item(f.relative_to(folder).with_suffix("").as_posix(), (f,)) for f in files]


def _items_from_list(kind: str, list_file: Path) -> list[Item]:
    items = []
    for line in read_utf8(list_file).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # exo: one line holds the views of an item, tab-separated (or a folder of views).
        names = line.split("\t") if kind == "exo" else [line]
        paths = tuple(_resolve_media(list_file.parent, n) for n in names)
        items.append(Item(item_id(names), paths))
    return items


def item_id(media: Sequence[str | Path]) -> str:
    """The store id of an item: :func:`media_item_id` of its one media file; for several views,
    their common folder, then the views' names without suffix joined by ``+``
    (``take/cam01+cam02``), so two items sharing a folder never share an id. Training and
    evaluation look features up by the same rule."""
    names = [media_item_id(Path(v).as_posix()) for v in media]
    if len(names) == 1:
        return names[0]
    common = os.path.commonpath(names)
    rest = "+".join(Path(n).relative_to(common).as_posix() if common else n for n in names)
    return f"{common}/{rest}" if common else rest


def _records(data) -> Iterable[dict]:
    if isinstance(data, dict):
        for key in WRAPPER_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
        # AVSD v1.0 train files: {video_id: record}.
        return [{"video_id": k, **v} for k, v in data.items() if isinstance(v, dict)]
    return data


def _items_from_annotation(kind: str, annotation: Path, media_root: Path) -> list[Item]:
    items: list[Item] = []
    for record in _records(read_json(annotation)):
        side = record.get("side") if isinstance(record.get("side"), dict) else {}
        name = side.get(kind) or next((record[f] for f in MEDIA_FIELDS if record.get(f) not in (None, "")), None)
        if name is None:
            raise ValueError(f"{annotation}: a record has none of the media fields {MEDIA_FIELDS}: {record}")
        if isinstance(name, dict):  # Ego-Exo4D: {"ego": ..., "exo1": ..., "exo4": ...}, read at 448 px
            names = [downscaled_view(str(v)) for k, v in sorted(name.items()) if k.startswith("exo")]
        else:  # the generic qa task's "side": {kind: path or [paths]} comes first
            names = [str(n) for n in name] if isinstance(name, list) else [str(name)]
        items.append(Item(item_id(names), tuple(_resolve_media(media_root, n) for n in names)))
    return items  # several questions about one video: extracted once (see _unique)


def items_of_task(kind: str, task: str, annotations: Path, media_root: Path) -> list[Item]:
    """The items a benchmark's samples read, found by the benchmark's own loader: its media
    layout (Music-AVQA's Real/Synthetic folders, Ego-Exo4D's 448-px copies) and the ids training
    and evaluation look up (:func:`pave.batching.store_source`), by construction."""
    from pave.data.datasets import load_samples

    items = []
    for sample in load_samples(task, [annotations]):
        refs = sample.side_channels.get(kind) or (sample.video or sample.scene_id,)
        items.append(Item(item_id(refs), tuple(media_root / ref for ref in refs)))
    return items


def discover_items(
    kind: str,
    inputs: str | Path,
    media_root: str | Path | None = None,
    task: str | None = None,
    backend: str = "builtin",
) -> list[Item]:
    """The items to extract for ``kind`` from ``inputs``; with ``task``, ``inputs`` is that
    benchmark's annotation file and its loader names the media (:func:`items_of_task`); with
    ``backend="released"``, ``inputs`` is a folder of the authors' feature files
    (:mod:`pave.sidechannels.released`). Else:

    * a folder: every video under it (audio, video; id = relative path without suffix) and, for audio,
      every sound file (.wav, .m4a, .mp3, ...; id = relative path), every
      folder holding ``color/`` (3d), every folder holding videos (exo, the videos are its views);
    * a ``.txt`` list: one path per line relative to the list's folder (exo: the views of an
      item separated by tabs, or one folder of views);
    * a ``.json`` (or ``.jsonl``) annotation file (the benchmark's own, or the generic ``qa``
      task's): the media named by each record's first
      field among :data:`MEDIA_FIELDS`, relative to ``media_root`` (default: the file's folder),
      a bare id getting a video suffix; duplicates are extracted once.
    """
    inputs = Path(inputs)
    if kind not in KINDS:
        raise ValueError(f"unknown side channel {kind!r}; expected one of {KINDS}")
    if backend == "released":
        items = _items_of_released(kind, inputs)
    elif task is not None:
        items = items_of_task(kind, task, inputs, Path(media_root) if media_root else inputs.parent)
    elif inputs.is_dir():
        items = _items_from_folder(kind, inputs)
    elif inputs.suffix in (".json", ".jsonl"):
        items = _items_from_annotation(kind, inputs, Path(media_root) if media_root else inputs.parent)
    elif inputs.is_file():
        items = _items_from_list(kind, inputs)
    else:
        raise FileNotFoundError(f"{inputs}: no such folder, list or annotation file")
    return _unique(items, inputs)


def _unique(items: list[Item], inputs: Path) -> list[Item]:
    """Items once each; two different media under one id would overwrite each other's features."""
    seen: dict[str, Item] = {}
    for item in items:
        other = seen.setdefault(item.id, item)
        if other.paths != item.paths:
            raise ValueError(
                f"{inputs}: two items would both be stored as {item.id!r} ({other.source} and {item.source}); "
                "give them distinct names"
            )
    return list(seen.values())


def extract(
    kind: str,
    inputs: str | Path,
    out: str | Path,
    backend: str = "builtin",
    workers: int = 1,
    media_root: str | Path | None = None,
    progress: bool = True,
    task: str | None = None,
    **options,
) -> Summary:
    """Encode every item of ``inputs`` not yet in the store at ``out``.

    ``options`` go to the encoder (``model``, ``weights``, ``device``, ...). Returns a
    :class:`Summary`; items that fail are logged and listed there, never written.
    """
    started = time.perf_counter()
    items = discover_items(kind, inputs, media_root, task, backend)
    store = FeatureStore(out)
    if removed := store.remove_stale_temporaries():
        logger.info("%s: removed %d temporary files of an interrupted run", out, removed)
    summary = Summary(total=len(items))
    todo = [item for item in items if item.id not in store]
    summary.skipped = len(items) - len(todo)
    if summary.skipped:
        logger.info("%d of %d items already extracted in %s; skipping them", summary.skipped, len(items), out)
    if not todo:
        store.flush()
        return summary
    encoder = get_encoder(kind, backend, **options)
    if store.spec and (store.spec["kind"], store.spec["encoder"]) != (kind, encoder.name):
        raise ValueError(
            f"{out} holds {store.spec['kind']}/{store.spec['encoder']} features, not {kind}/{encoder.name}"
        )

    def run(item: Item) -> None:
        paths = list(item.paths) if kind == "exo" and len(item.paths) > 1 else item.paths[0]
        store.put(item.id, encoder.encode(paths), source=item.source)

    workers = max(1, min(workers, len(todo)))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    last_flush = time.monotonic()
    pool = ThreadPoolExecutor(workers)
    try:
        futures = {pool.submit(run, item): item for item in todo}
        with tqdm(total=len(todo), desc=f"extract {kind}", disable=not progress) as bar:
            for future in as_completed(futures):
                item = futures[future]
                try:
                    future.result()
                    summary.extracted += 1
                except Exception as exc:  # a bad item must not stop the run; it is reported below
                    summary.failed[item.id] = f"{type(exc).__name__}: {exc}"
                    logger.warning("skipped %s: %s", item.id, exc)
                    logger.debug("traceback for %s", item.id, exc_info=exc)
                bar.update()
                bar.set_postfix(ok=summary.extracted, failed=len(summary.failed))
                if time.monotonic() - last_flush > FLUSH_INTERVAL:
                    store.flush()
                    last_flush = time.monotonic()
    finally:
        # On an interrupt, items not started are dropped; those running finish and are kept.
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
        store.flush()
    summary.seconds = time.perf_counter() - started
    return summary
