"""Multi-view side channel: synchronised exo-centric videos through the base vision tower.

As the authors did for Ego-Exo4D: each of the V exo videos is sampled like the main video (32
frames, uniform), encoded by the base model's vision tower and pooled to the base model's own
video grid (SigLIP's 27x27 -> 14x14 = 196 tokens, bilinear as LLaVA-OneVision). Frames are
stacked time-major with the view index fastest, T_s = 32 * V, so the patch's chunk alignment
gives each key frame the V views of its time step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pave.data.media import VIDEO_SUFFIXES, MediaError, sample_frames
from pave.sidechannels.base import SideChannel, SideChannelEncoder, register
from pave.sidechannels.vision import VisionTower, llava_ov_pooled_grid, pool_grid


def view_paths(item: str | Path | Sequence[str | Path]) -> list[Path]:
    """The view videos of an item: a list of files as given, or the video files of a folder in
    name order."""
    if isinstance(item, (str, Path)):
        folder = Path(item)
        if not folder.is_dir():
            raise MediaError(f"{folder}: expected a folder of exo-view videos or a list of video files")
        paths = sorted(p for p in folder.iterdir() if p.suffix in VIDEO_SUFFIXES)
        if not paths:
            raise MediaError(f"{folder}: no video files (expected one per exo view)")
        return paths
    return [Path(p) for p in item]


@register("exo", "builtin")
class MultiViewEncoder(SideChannelEncoder):
    """Tokens (num_frames * V, g_h, g_w, C): row t * V + v is view v at key frame t; (g_h, g_w)
    is the base model's pooled video grid. Timestamps are each view's own frame times."""

    kind = "exo"

    def __init__(self, model: str, num_frames: int = 32, device: str = "cpu", batch_size: int = 16):
        self.tower = VisionTower.from_pretrained(model, device=device, batch_size=batch_size)
        self.num_frames = num_frames
        self.name = f"builtin-{self.tower.name}"

    @property
    def dim(self) -> int:
        return self.tower.dim

    def encode(self, item: str | Path | Sequence[str | Path]) -> SideChannel:
        grid = llava_ov_pooled_grid(self.tower.grid())
        tokens, times = [], []
        for path in view_paths(item):
            frames = sample_frames(path, self.num_frames)
            tokens.append(pool_grid(self.tower.encode(frames.frames), grid, mode="bilinear"))
            times.append(frames.timestamps)
        # (V, T, g_h, g_w, C) -> (T, V, ...) -> (T * V, ...): time-major, view fastest.
        stacked = torch.stack(tokens, dim=1).flatten(0, 1)
        timestamps = torch.from_numpy(np.stack(times, axis=1).reshape(-1).astype(np.float32))
        return SideChannel(stacked, timestamps, self.kind, self.name)
