"""3D side channel: per scan frame, patch features plus the world position of each patch.

LLaVA-3D (the paper's 3D encoder) adds a *learned* embedding of each patch's back-projected
3D position to its CLIP features. With no trained weights, the built-in back-end keeps the two
apart: tokens are [vision-tower patch features (C) ; a fixed Fourier embedding of the patch's
world position (96)], so the patch's learned input mapping does the mixing LLaVA-3D's MLP does.

Geometry (pinhole, camera-to-world poses, depth in metres) is in small batched functions:
:func:`backproject` gives every depth pixel's world point, :func:`patch_points` averages the
valid points under each patch (LLaVA-3D samples one pixel per patch; the average is robust to
the holes of sensor depth), :func:`fourier_embedding` encodes them.

Tokens per frame are the tower's patch grid: 27x27 = 729 for LLaVA-OneVision's SigLIP-384,
24x24 = 576 (the paper's count) when ``model`` is a CLIP ViT-L/14-336 checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pave.data.media import read_scan
from pave.sidechannels.base import SideChannel, SideChannelEncoder, register
from pave.sidechannels.vision import VisionTower


def backproject(depth: torch.Tensor, intrinsics: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """World points of depth pixels.

    Pixel (row v, column u) with depth z is the camera point ((u - cx) z / fx, (v - cy) z / fy, z),
    mapped to the world by the camera-to-world ``pose``.

    Args:
        depth: (..., H, W) metres; <= 0 or non-finite means no measurement.
        intrinsics: (3, 3) or (..., 3, 3) pinhole matrix of the depth image.
        pose: (..., 4, 4) camera-to-world.
    Returns:
        (..., H, W, 3) world points, NaN where there is no depth.
    """
    depth = depth.double()
    K, pose = intrinsics.double(), pose.double()
    h, w = depth.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(h, dtype=depth.dtype), torch.arange(w, dtype=depth.dtype), indexing="ij"
    )
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    camera = torch.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], dim=-1)  # (..., H, W, 3)
    world = camera @ pose[..., None, :3, :3].transpose(-1, -2) + pose[..., None, None, :3, 3]
    valid = torch.isfinite(depth) & (depth > 0)
    return world.masked_fill(~valid[..., None], float("nan"))


def patch_points(points: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mean of the valid (non-NaN) points under each cell of a (g_h, g_w) grid over the image.

    Args:
        points: (T, H, W, 3).
    Returns:
        (T, g_h, g_w, 3), NaN for cells without any valid point.
    """
    valid = torch.isfinite(points).all(dim=-1, keepdim=True)
    summed = torch.cat([torch.where(valid, points, 0.0), valid.to(points.dtype)], dim=-1)
    pooled = F.adaptive_avg_pool2d(summed.permute(0, 3, 1, 2), grid).permute(0, 2, 3, 1)
    count = pooled[..., 3:]
    return torch.where(count > 0, pooled[..., :3] / count, float("nan"))


def fourier_embedding(points: torch.Tensor, num_freqs: int = 16, min_wavelength: float = 0.1) -> torch.Tensor:
    """sin/cos of each coordinate at ``num_freqs`` wavelengths from ``min_wavelength`` metres up
    in steps of sqrt(2) (0.1 m to 18 m by default: a patch's footprint to a large room).

    Args:
        points: (..., 3) metres, NaN for unknown.
    Returns:
        (..., 6 * num_freqs) float32, all zeros for unknown points (never a valid code, since
        cos and sin are not both zero).
    """
    wavelengths = min_wavelength * 2.0 ** (torch.arange(num_freqs, dtype=torch.float64) / 2)
    angles = 2 * torch.pi * points.double()[..., None] / wavelengths  # (..., 3, F)
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)
    return torch.nan_to_num(emb, nan=0.0).float()


@register("3d", "builtin")
class Scene3DEncoder(SideChannelEncoder):
    """Tokens (T_s, g_h, g_w, C + 6 * num_freqs) for T_s = ``num_frames`` RGB-D frames of a scan
    folder (layout of :func:`pave.data.media.read_scan`). ``feature_layer`` overrides the
    checkpoint's choice (LLaVA-3D takes CLIP's penultimate layer, -2)."""

    kind = "3d"

    def __init__(
        self,
        model: str,
        num_frames: int = 32,
        depth_scale: float = 1000.0,
        num_freqs: int = 16,
        feature_layer: int | None = None,
        device: str = "cpu",
        batch_size: int = 16,
    ):
        self.tower = VisionTower.from_pretrained(
            model, device, feature_layer=feature_layer, batch_size=batch_size
        )
        self.num_frames, self.depth_scale, self.num_freqs = num_frames, depth_scale, num_freqs
        self.name = f"builtin-{self.tower.name}+xyz"

    @property
    def dim(self) -> int:
        return self.tower.dim + 6 * self.num_freqs

    def encode(self, item: str | Path) -> SideChannel:
        scan = read_scan(item, self.num_frames, self.depth_scale)
        features = self.tower.encode(scan.colors)  # (T, g_h, g_w, C)
        points = backproject(
            torch.from_numpy(scan.depths), torch.from_numpy(scan.intrinsics), torch.from_numpy(scan.poses)
        )
        xyz = patch_points(points, tuple(features.shape[1:3]))
        tokens = torch.cat([features, fourier_embedding(xyz, self.num_freqs)], dim=-1)
        return SideChannel(
            tokens, torch.from_numpy(np.asarray(scan.timestamps, np.float32)), self.kind, self.name
        )


def require_llava3d() -> None:
    """The LLaVA-3D back-end is not available: say why and what to use instead."""
    raise ImportError(
        "the 'llava3d' 3D back-end is not available in this version: LLaVA-3D is not on PyPI (a GitHub "
        "checkout pinning transformers 4.37 and torch 2.1) and its learned 3D position embedding comes "
        "with the ChaimZhu/LLaVA-3D-7B weights. Extract features with LLaVA-3D's code, or use --backend "
        "builtin (pass a CLIP ViT-L/14-336 checkpoint as --model for LLaVA-3D's 24x24 patch features)."
    )


@register("3d", "llava3d")
def _llava3d(**options) -> SideChannelEncoder:
    require_llava3d()
