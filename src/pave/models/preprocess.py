"""Frames -> ``pixel_values_videos`` for a base model's vision tower.

transformers' own video processors need torchvision, which is not always installable beside a
given torch build; resizing and normalising frames is simple enough to do in torch directly.
The numbers come from the checkpoint's (video_)preprocessor_config.json, as they do for
transformers' processors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Files a checkpoint may hold its preprocessing facts in, most specific first.
PREPROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")


@dataclass
class VideoPreprocessor:
    """Resize frames to ``size`` x ``size`` (bicubic, as SigLIP's processor), rescale, normalise."""

    size: int = 384
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255

    @classmethod
    def from_pretrained(cls, model_id_or_path: str, **hub_kwargs) -> VideoPreprocessor:
        """Read the preprocessing facts of a checkpoint (a local folder or a model id)."""
        from transformers.utils import cached_file

        for name in PREPROCESSOR_FILES:
            path = cached_file(
                model_id_or_path, name, _raise_exceptions_for_missing_entries=False, **hub_kwargs
            )
            if path is not None:
                return cls.from_dict(json.loads(open(path).read()))
        raise FileNotFoundError(f"{model_id_or_path}: none of {PREPROCESSOR_FILES} found")

    @classmethod
    def from_dict(cls, data: dict) -> VideoPreprocessor:
        size = data.get("size", {})
        side = size.get("height") or size.get("shortest_edge") if isinstance(size, dict) else size
        return cls(
            size=int(side or cls.size),
            mean=tuple(data.get("image_mean", cls.mean)),
            std=tuple(data.get("image_std", cls.std)),
            rescale_factor=float(data.get("rescale_factor", cls.rescale_factor)),
        )

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB frames -> (T, 3, size, size) float32 pixel values."""
        x = torch.as_tensor(np.asarray(frames))
        if x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected frames of shape (T, H, W, 3), got {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False)
        x = x.clamp(0, 255) * self.rescale_factor
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std
