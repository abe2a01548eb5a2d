"""Benchmark samples -> training/evaluation batches for a :class:`~pave.models.PatchedModel`.

An item is one question with its video's key frames -- or, when the frozen vision tower's
output is cached, its visual tokens -- and its side channels. The collator renders the chat
template, masks labels to the answer, pads side channels along time and stacks the rest.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pave.data.datasets.base import Sample
from pave.data.media import VIDEO_SUFFIXES, Frames, MediaError, read_frame_folder, read_scan, sample_frames
from pave.files import remove_stale, write_atomic
from pave.sidechannels.base import SideChannel
from pave.sidechannels.extract import item_id, media_item_id
from pave.sidechannels.store import FeatureStore

logger = logging.getLogger(__name__)

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


class VideoRef(NamedTuple):
    """Where a sample's key frames come from: a video file, a folder of frame images (read at
    ``frame_rate`` per second) or a scan folder, and the ``window`` (start, end) seconds the
    question is about, if any."""

    path: Path
    window: tuple[float, float] | None = None
    frame_rate: float | None = None

    @classmethod
    def of(cls, video: VideoRef | str | Path) -> VideoRef:
        """A reference as given, or the whole of a video file or folder given by its path."""
        return video if isinstance(video, VideoRef) else cls(Path(video))


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


def key_frames(video: VideoRef | str | Path, num_frames: int) -> Frames:
    """``num_frames`` evenly spaced key frames of a video file or frame folder (within its window),
    or of a scan folder's colour images (3D QA); a scan with fewer frames repeats some, so every
    sample has the same T."""
    ref = VideoRef.of(video)
    if not ref.path.is_dir():
        return sample_frames(ref.path, num_frames, ref.window)
    if not (ref.path / "color").is_dir():
        if ref.frame_rate is None:
            raise MediaError(f"{ref.path}: a folder of frames needs its frame rate (the sample's frame_rate)")
        return read_frame_folder(ref.path, num_frames, ref.frame_rate, ref.window)
    scan = read_scan(ref.path, num_frames)
    pick = np.linspace(0, len(scan.colors) - 1, num_frames).round().astype(int)
    return Frames(scan.colors[pick], scan.timestamps[pick])


class VisualTokenCache:
    """The frozen vision tower's output per video, computed once and kept on disk.

    Exact, because the tower is frozen and in eval mode: a cached video gives the same tokens
    as a fresh encode. Files are keyed by the video (path, size, mtime, window, frame rate), the
    number of frames, the base model and the preprocessing's fingerprint (so a change of resizing arithmetic does
    not reuse older tokens), and written atomically.

    Args:
        directory: where the ``.safetensors`` files go.
        model: a ``PatchedModel`` (its vision path encodes).
        preprocessor: frames -> pixel values (the processor's ``VideoPreprocessor``).
        num_frames: key frames per video.
    """

    def __init__(self, directory: str | Path, model, preprocessor, num_frames: int) -> None:
        self.directory = Path(directory)
        self.model = model
        self.preprocessor = preprocessor
        self.num_frames = num_frames

    def path(self, video: VideoRef | Path) -> Path:
        video = VideoRef.of(video)
        stat = video.path.stat()
        media = (video.path.resolve(), stat.st_size, stat.st_mtime_ns)
        if video.window is not None or video.frame_rate is not None:  # whole videos keep their older keys
            media += (video.window, video.frame_rate)
        settings = (self.num_frames, self.model.base_name, self.preprocessor.fingerprint)
        key = "|".join(map(str, media + settings))
        return self.directory / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.safetensors"

    def build(
        self, videos: Sequence[VideoRef | Path], batch_size: int = 8, load: Callable[[VideoRef, int], Frames] | None = None
    ) -> None:
        """Encode every video (or scan folder) not cached yet, with a progress bar.

        ``load(video, num_frames)`` gives the key frames (default: :func:`key_frames`).
        """
        load = load or key_frames
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_stale(self.directory)  # left by a build that was killed mid-write
        todo = sorted({VideoRef.of(v) for v in videos if not self.path(v).exists()}, key=str)
        if not todo:
            return
        device = next(self.model.llava.parameters()).device
        for start in tqdm(range(0, len(todo), batch_size), desc="caching visual tokens", unit="batch"):
            chunk, decoded = [], []
            for video in todo[start : start + batch_size]:
                try:
                    decoded.append(load(video, self.num_frames))
                    chunk.append(video)
                except (ValueError, OSError) as exc:  # its samples fail later, each on its own
                    logger.warning("not caching %s: %s", video, exc)
            if not chunk:
                continue
            pixels = torch.stack([self.preprocessor(d.frames) for d in decoded])
            visual = self.model.encode_video(pixels.to(device))
            for i, video in enumerate(chunk):
                tensors = {
                    "tokens": visual.tokens[i].float().cpu().contiguous(),
                    "query_features": visual.query_features[i].float().cpu().contiguous(),
                    "frame_times": torch.as_tensor(decoded[i].timestamps, dtype=torch.float32),
                }
                write_atomic(self.path(video), lambda tmp, tensors=tensors: save_file(tensors, tmp))

    def get(self, video: VideoRef | Path) -> dict[str, torch.Tensor]:
        return load_file(self.path(video))


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


@dataclass
class QACollator:
    """Items -> a batch for ``PatchedModel.forward`` / ``generate``.

    Args:
        processor: a :class:`~pave.models.processor.VideoChatProcessor`.
        train: append answers and return labels (right padding); else left-pad prompts.
    """

    processor: object
    train: bool = True

    def __call__(self, items: Sequence[dict]) -> dict:
        questions = [it["question"] for it in items]
        answers = [it["answer"] for it in items] if self.train else None
        text = {"padding_side": "right" if self.train else "left", "histories": [it.get("history", ()) for it in items]}
        if "visual" in items[0]:
            num_frames = items[0]["visual"]["tokens"].shape[0]
            batch = self.processor(questions, answers, num_frames=num_frames, **text)
            batch["visual"] = {k: torch.stack([it["visual"][k] for it in items]) for k in items[0]["visual"]}
        else:
            batch = self.processor(questions, answers, frames=[it["frames"] for it in items], **text)
            batch["frame_times"] = torch.stack([it["frame_times"] for it in items])
        batch["side"] = {name: pad_side([it["side"][name] for it in items]) for name in items[0]["side"]}
        return batch


def pad_side(channels: Sequence[SideChannel]) -> dict[str, torch.Tensor]:
    """Right-pad side channels of different lengths: tokens (B, T_s, s_h, s_w, C), mask and
    times (B, T_s)."""
    grids = {c.tokens.shape[1:] for c in channels}
    if len(grids) != 1:
        raise ValueError(f"side channels in one batch must share grid and width, got {sorted(grids)}")
    longest = max(c.tokens.shape[0] for c in channels)
    tokens = torch.zeros((len(channels), longest, *channels[0].tokens.shape[1:]), dtype=channels[0].tokens.dtype)
    mask = torch.zeros((len(channels), longest), dtype=torch.bool)
    times = torch.zeros((len(channels), longest), dtype=torch.float32)
    for i, c in enumerate(channels):
        n = c.tokens.shape[0]
        tokens[i, :n], mask[i, :n] = c.tokens, True
        times[i, :n] = c.timestamps
        times[i, n:] = c.timestamps[-1]  # padded times stay sorted
    return {"tokens": tokens, "mask": mask, "times": times}


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
