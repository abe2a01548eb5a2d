"""Saved patches on the tiny base and a small video with sound, for the inference, viz and demo tests.

The patches are untrained (random output norm, so they change the answer); inference only needs
them to load, read their side channels and attend.
"""

from pathlib import Path

import numpy as np
import torch

from pave.data.media import write_video
from pave.models.patched import PatchedModel

FPS, SECONDS, SAMPLE_RATE = 8, 3, 16000


def save_patches(tiny_model_dir: Path, out: Path) -> dict[str, Path]:
    """Patch directories: ``audio`` (log-mel, with a LoRA adapter), ``video`` (dense frames through
    the base's vision tower, 2x2 tokens) and ``exo`` (needs exo-view videos)."""
    torch.manual_seed(0)
    model = PatchedModel.from_base(str(tiny_model_dir))
    tower = f"builtin-{Path(tiny_model_dir).name}"
    configs = {
        "video": model.patch_config(side_dim=32, side_channel="video", side_grid=(2, 2), side_encoder=tower),
        "exo": model.patch_config(side_dim=32, side_channel="exo", side_grid=(4, 4), side_encoder=tower),
        "audio": model.patch_config(side_dim=256, side_channel="audio", side_encoder="builtin-logmel"),
    }
    dirs = {}
    for name, config in configs.items():
        patch = model.add_patch(name, config, trainable=False)
        with torch.no_grad():
            patch.output_norm.weight.normal_()
            patch.output_norm.bias.normal_()
        if name == "audio":
            model.add_lora(r=4, alpha=8)
        dirs[name] = model.save_pretrained(out / name, patch=name)
    return dirs


def write_clip(path: Path) -> Path:
    """A 3 s, 32x32 mp4 at 8 fps (a square moving right) with a 440 Hz tone."""
    frames = np.zeros((FPS * SECONDS, 32, 32, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        frame[10:22, i : i + 8] = (250, 40, 40)
    t = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE
    return write_video(path, frames, FPS, audio=(0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
