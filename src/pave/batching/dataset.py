"""Benchmark samples as a dataset of questions with their media, for training and evaluation.

An item is one question with its video's key frames -- or, when the frozen vision tower's
output is cached, its visual tokens -- and its side channels (from a feature store, see
:func:`store_source`). :class:`~pave.batching.QACollator` turns items into batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pave.batching.visual_cache import VisualTokenCache
from pave.data.datasets.base import Sample
from pave.data.keyframes import VideoRef, key_frames
from pave.data.media import VIDEO_SUFFIXES
from pave.sidechannels.base import SideChannel
from pave.sidechannels.extract import item_id, media_item_id
from pave.sidechannels.store import FeatureStore

# Side channel name -> function returning a sample's side tokens (e.g. a feature-store lookup).
SideSource = Callable[[Sample], SideChannel]


def target_text(sample: Sample) -> str:
    """The answer a model is trained to give: the option letter for multiple choice, else the
    first reference answer."""
    if sample.options and sample.answer_letter:
        return sample.answer_letter
    if not sample.answers:
        raise ValueError(f"sample {sample.id} ({sample.source}) has no answer to train on")
    return sample.answers[0]


def repeat_samples(samples: Sequence[Sample], rules: Mapping[str, int], where: str = "data.repeat") -> list[Sample]:
    """A data mix: each sample whose ``groups`` match a ``"<group>=<value>": times`` rule comes
    ``times`` times (the largest of its rules), the copies right after it, as the authors
    duplicate Music-AVQA's audio questions. A rule no sample matches is refused (a typo)."""
    parsed = {}
    for rule, times in rules.items():
        group, sep, value = rule.partition("=")
        if not sep or not group:
            raise ValueError(f"{where}: expected '<group>=<value>: times', got {rule!r}")
        if times < 1:
            raise ValueError(f"{where}.{rule}: times must be at least 1, got {times}")
        if not any(s.groups.get(group) == value for s in samples):
            known = sorted({f"{k}={v}" for s in samples for k, v in s.groups.items()})
            raise ValueError(f"{where}: no sample has {rule!r}; groups present: {', '.join(known[:12]) or 'none'}")
        parsed[group, value] = times
    mixed = []
    for sample in samples:
        times = max((t for (g, v), t in parsed.items() if sample.groups.get(g) == v), default=1)
        mixed += [sample] * times
    return mixed


class QADataset(Dataset):
    """Questions with their media, for training or evaluation.

    Args:
        samples: benchmark samples (see :mod:`pave.data.datasets`).
        media_root: folder the samples' video paths are relative to.
        num_frames: key frames per video (LLaVA-OneVision: 32).
        side_sources: side channel name -> function giving a sample's side tokens.
        visual_cache: when given (and built), items carry cached visual tokens, not frames.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        media_root: str | Path,
        num_frames: int,
        side_sources: Mapping[str, SideSource] | None = None,
        visual_cache: VisualTokenCache | None = None,
    ) -> None:
        self.samples = list(samples)
        self.media_root = Path(media_root)
        self.num_frames = num_frames
        self.side_sources = dict(side_sources or {})
        self.visual_cache = visual_cache
        for sample in self.samples:
            if sample.video is None and sample.scene_id is None:
                raise ValueError(f"sample {sample.id} ({sample.source}) has neither a video nor a scan")

    def video(self, sample: Sample) -> VideoRef:
        """The sample's video file or frame folder with its window, or its scan folder for 3D QA."""
        path = self.media_root / (sample.video if sample.video is not None else sample.scene_id)
        return VideoRef(path, sample.clip, sample.frame_rate)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        item = {
            "id": sample.id,
            "question": sample.prompt,
            "history": sample.history,
            "answer": target_text(sample) if sample.answers else None,
        }
        video = self.video(sample)
        if self.visual_cache is not None:
            item["visual"] = self.visual_cache.get(video)
        else:
            frames = key_frames(video, self.num_frames)
            item["frames"] = frames.frames
            item["frame_times"] = torch.as_tensor(frames.timestamps, dtype=torch.float32)
        item["side"] = {name: source(sample) for name, source in self.side_sources.items()}
        return item


def store_source(store: FeatureStore, channel: str) -> SideSource:
    """Side tokens of a sample from a feature store.

    A sample names its side media by path relative to the media root; ``pave extract`` keys
    items by that path without its suffix (over a folder) or by the bare media name (over an
    annotation file), so both are tried. An item of several views (exo) is keyed by all of them
    (:func:`~pave.sidechannels.extract.item_id`).
    """

    def source(sample: Sample) -> SideChannel:
        refs = sample.side_channels.get(channel) or ((sample.video,) if sample.video else ())
        tried = []
        if len(refs) > 1:
            key = item_id(refs)
            if key in store:
                return store.get(key)
            tried.append(key)
        for ref in refs:
            # Extraction's own id first; the bare name (annotation files that give bare ids) only
            # for videos, so a separate side file (clip.wav) never matches its video's features.
            keys = [media_item_id(ref), ref] + ([Path(ref).stem] if Path(ref).suffix in VIDEO_SUFFIXES else [])
            for key in dict.fromkeys(keys):
                if key in store:
                    return store.get(key)
                tried.append(key)
        raise KeyError(f"sample {sample.id}: no {channel} features in {store.path} (tried {tried})")

    return source
