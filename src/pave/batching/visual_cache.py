"""The frozen vision tower's output per video, on disk: computed once, exact on every reuse."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from pave.data.keyframes import VideoRef, key_frames
from pave.data.media import Frames
from pave.files import remove_stale, write_atomic
from pave.tokens import VisualTokens

logger = logging.getLogger(__name__)
# The file's tensor names: VisualTokens' fields, in order.
_FIELDS = tuple(f.name for f in dataclasses.fields(VisualTokens))


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
            times = torch.stack([torch.as_tensor(d.timestamps, dtype=torch.float32) for d in decoded])
            visual = self.model.encode_video(pixels.to(device), times.to(device))
            for i, video in enumerate(chunk):
                tensors = {
                    name: value[i].float().cpu().contiguous()
                    for name, value in zip(_FIELDS, visual.tensors(), strict=True)
                    if value is not None
                }
                write_atomic(self.path(video), lambda tmp, tensors=tensors: save_file(tensors, tmp))

    def get(self, video: VideoRef | Path) -> VisualTokens:
        """The cached tokens of one video, as a batch of one."""
        tensors = load_file(self.path(video))
        return VisualTokens(*(tensors[name][None] if name in tensors else None for name in _FIELDS))


