"""Scan folders in the ScanNet layout the 3D loaders read (colour JPEGs, 16-bit depth PNGs,
camera poses and the depth intrinsics), written from arrays."""

from pathlib import Path

import numpy as np
from PIL import Image


def write_scan(
    folder: str | Path,
    colors: np.ndarray,
    depths: np.ndarray,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    frame_ids: list[int] | None = None,
    depth_scale: float = 1000.0,
) -> Path:
    """Write posed RGB-D frames in the layout :func:`pave.data.media.read_scan` reads.

    Args:
        colors: (T, H, W, 3) uint8, saved as JPEG. depths: (T, h, w) metres, saved as uint16 PNG
        in units of 1 / depth_scale. poses: (T, 4, 4) camera-to-world. intrinsics: (3, 3) of the
        depth image. frame_ids: file names (default 0..T-1).
    """
    folder = Path(folder)
    for sub in ("color", "depth", "pose", "intrinsic"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    K = np.eye(4)
    K[:3, :3] = intrinsics
    np.savetxt(folder / "intrinsic" / "intrinsic_depth.txt", K)
    for i, color, depth, pose in zip(frame_ids or range(len(colors)), colors, depths, poses, strict=True):
        Image.fromarray(np.asarray(color, np.uint8)).save(folder / "color" / f"{i}.jpg")
        Image.fromarray(np.round(np.asarray(depth) * depth_scale).astype(np.uint16)).save(
            folder / "depth" / f"{i}.png"
        )
        np.savetxt(folder / "pose" / f"{i}.txt", pose)
    return folder
