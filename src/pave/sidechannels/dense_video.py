"""Dense-video side channel: frames at 2 fps, each encoded and pooled to a 2x2 token grid.

The paper encodes 2 fps frames with LanguageBind's video tower (16x16 feature map per frame)
and pools each frame to 2x2. The built-in back-end uses the base model's own frozen vision
tower instead, at a low resolution by default: 16 patches per side (224 px for SigLIP's 14-px
patches, LanguageBind's 16x16 map), or the tower's own size if that is smaller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pave.data.media import iter_frames_at_rate
from pave.sidechannels.base import SideChannel, SideChannelEncoder, register
from pave.sidechannels.vision import VisionTower, pool_grid


@register("video", "builtin")
class DenseVideoEncoder(SideChannelEncoder):
    """Tokens (T_s, 2, 2, C) for T_s frames at ``fps``; C = the tower's width (1152 for SigLIP).

    Args:
        model: a base model id or folder whose vision tower to use.
        fps: frames per second sampled from the video.
        grid: tokens per frame after area pooling.
        patches_per_side: input resolution in patches; None for the tower's own resolution.
    """

    kind = "video"

    def __init__(
        self,
        model: str,
        fps: float = 2.0,
        grid: tuple[int, int] = (2, 2),
        patches_per_side: int | None = 16,
        device: str = "cpu",
        batch_size: int = 16,
    ):
        self.tower = VisionTower.from_pretrained(model, device=device, batch_size=batch_size)
        native = self.tower.preprocess.size
        self.size = (
            None if patches_per_side is None else min(native, patches_per_side * self.tower.patch_size)
        )
        self.fps, self.out_grid = fps, tuple(grid)
        self.name = f"builtin-{self.tower.name}"

    @property
    def dim(self) -> int:
        return self.tower.dim

    def encode(self, item: str | Path) -> SideChannel:
        tokens, times, batch = [], [], []
        # Stream the video in batches so an hour-long video never sits decoded in memory.
        for t, frame in iter_frames_at_rate(item, self.fps):
            times.append(t)
            batch.append(frame)
            if len(batch) == self.tower.batch_size:
                tokens.append(pool_grid(self.tower.encode(np.stack(batch), self.size), self.out_grid))
                batch = []
        if batch:
            tokens.append(pool_grid(self.tower.encode(np.stack(batch), self.size), self.out_grid))
        return SideChannel(torch.cat(tokens), torch.tensor(times, dtype=torch.float32), self.kind, self.name)


def require_languagebind() -> None:
    """The LanguageBind back-end is not available: say why and what to use instead."""
    raise ImportError(
        "the 'languagebind' dense-video back-end is not available in this version: the only packaged "
        "LanguageBind ('languagebind' on PyPI) requires transformers<5, and the PAVE authors ran it from a "
        "Video-LLaVA checkout. Extract LanguageBind features with that code, or use --backend builtin "
        "(the base model's own vision tower)."
    )


@register("video", "languagebind")
def _languagebind(**options) -> SideChannelEncoder:
    require_languagebind()
