"""Frames -> ``pixel_values_videos`` for a base model's vision tower.

transformers' own video processors need torchvision, which is not always installable beside a
given torch build; resizing and normalising frames is simple enough to do in torch directly, and
done as torchvision does it (antialiased bicubic on the uint8 frames, then rescale and
normalise) the pixel values equal transformers' processor exactly
(``benchmarks/check_preprocessing.py`` measures it). The numbers come from the checkpoint's
(video_)preprocessor_config.json, as they do for transformers' processors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Files a checkpoint may hold its preprocessing facts in, most specific first.
PREPROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
# CLIP's normalisation (OpenAI CLIP; Video-LLaVA's LanguageBind tower and Qwen2.5-VL use it too).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Bumped whenever the resizing arithmetic changes, so caches of older pixel values are not reused.
RESIZE_ALGORITHM = "bicubic-antialias-uint8"


@dataclass
class VideoPreprocessor:
    """Resize frames to ``size`` x ``size`` (antialiased bicubic, as SigLIP's processor), rescale,
    normalise. With ``crop`` (CLIP's processors), resize the shortest edge to ``size`` keeping the
    aspect ratio, then cut the central ``size`` x ``size``."""

    size: int = 384
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255
    crop: bool = False

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
            crop=bool(data.get("do_center_crop", False)),
        )

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that decides the pixel values (for cache keys)."""
        facts = json.dumps({**asdict(self), "resize": RESIZE_ALGORITHM}, sort_keys=True)
        return hashlib.sha1(facts.encode()).hexdigest()[:12]

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB frames -> (T, 3, size, size) float32 pixel values."""
        x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.asarray(frames))
        if x.dim() != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {tuple(x.shape)} {x.dtype}")
        x = x.permute(0, 3, 1, 2)
        height, width = x.shape[-2:]
        if self.crop:  # the shortest edge to size, as CLIP's processor rounds the other one
            short, long = sorted((height, width))
            target = (self.size, int(self.size * long / short))
            x = _resize(x, target if height <= width else target[::-1])
            top, left = (x.shape[-2] - self.size) // 2, (x.shape[-1] - self.size) // 2
            x = x[..., top : top + self.size, left : left + self.size]
        else:
            x = _resize(x, (self.size, self.size))
        # Rescaling folded into the normalisation, in the same float arithmetic as transformers.
        mean = (torch.tensor(self.mean) * (1.0 / self.rescale_factor)).view(1, 3, 1, 1)
        std = (torch.tensor(self.std) * (1.0 / self.rescale_factor)).view(1, 3, 1, 1)
        return (x.float() - mean) / std


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resizing of (T, 3, H, W) uint8 frames, as torchvision resizes them:
    natively in uint8 on the CPU, elsewhere in float32, clamped and rounded (without
    antialiasing, 1080p frames differ by up to 2)."""
    if tuple(x.shape[-2:]) == size:
        return x
    if x.device.type == "cpu":
        return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    return F.interpolate(x.float(), size=size, mode="bicubic", antialias=True).clamp_(0, 255).round_()
