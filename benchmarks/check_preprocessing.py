"""Our frame preprocessing against transformers' LLaVA-OneVision video processor.

transformers' video processors need torchvision, which does not install beside every torch build
(it does not beside the CPU torch 2.13.0 of `make test`), so this runs in any environment that has
both, with the package on the path:

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision transformers av
    PYTHONPATH=src /tmp/tv/bin/python benchmarks/check_preprocessing.py

It prints, per frame size, the largest absolute difference of the pixel values (normalised units)
between transformers' processor and `pave.models.preprocess.VideoPreprocessor`, with and without
the antialiasing that the processor applies.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from pave.models.preprocess import VideoPreprocessor

SIZES = [(1080, 1920), (720, 1280), (480, 640), (240, 320), (384, 384), (200, 200)]


def natural_frames(height: int, width: int, count: int, seed: int) -> np.ndarray:
    """Frames with edges, gradients and noise: what makes resampling filters disagree."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(count):
        base = 127 + 100 * np.sin(x / (7 + 3 * i)) * np.cos(y / (11 + i))
        stripes = np.where(((x + 3 * i) // 9 + y // 13) % 2 == 0, 60.0, -60.0)
        rgb = np.stack([base + stripes, base - stripes, 255 - base], axis=-1)
        rgb += rng.normal(0, 25, rgb.shape)
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(frames)


def without_antialias(ours: VideoPreprocessor, frames: np.ndarray) -> torch.Tensor:
    """The resize the project used before (plain bicubic, no antialiasing), for comparison."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(ours.size, ours.size), mode="bicubic", align_corners=False).clamp(0, 255)
    mean = torch.tensor(ours.mean).view(1, 3, 1, 1)
    std = torch.tensor(ours.std).view(1, 3, 1, 1)
    return (x * ours.rescale_factor - mean) / std


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4, help="frames per size")
    args = parser.parse_args()
    from transformers import LlavaOnevisionVideoProcessor

    reference = LlavaOnevisionVideoProcessor()  # the values of the released checkpoints' config
    ours = VideoPreprocessor.from_dict(reference.to_dict())
    print(f"torch {torch.__version__}; reference: {type(reference).__name__}, size {ours.size}")
    print(f"{'frame size':>12}  {'max |diff|':>10}  {'mean |diff|':>11}  {'no-antialias max':>16}")
    for seed, (height, width) in enumerate(SIZES):
        frames = natural_frames(height, width, args.frames, seed)
        expected = reference(videos=[frames], return_tensors="pt")["pixel_values_videos"][0].float()
        diff = (ours(frames) - expected).abs()
        old = (without_antialias(ours, frames) - expected).abs().max().item()
        print(f"{height:>5}x{width:<6}  {diff.max().item():>10.3g}  {diff.mean().item():>11.3g}  {old:>16.3g}")


if __name__ == "__main__":
    main()
