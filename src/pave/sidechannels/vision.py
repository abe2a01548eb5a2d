"""A base model's frozen vision tower as a side-channel encoder, shared by the dense-video,
3D and multi-view channels.

Only the tower's weights are read from the checkpoint (for a 7B LLaVA-OneVision that is ~0.4B of
~8B parameters), and its features are taken exactly where the base model takes them: the hidden
states of ``vision_feature_layer``, before the multimodal projector (1152-d for SigLIP
so400m), which is also what the patch uses as queries.

Shapes: T frames; the tower sees ``size`` x ``size`` pixels as a (g_h, g_w) grid of patches.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pave.models.preprocess import VideoPreprocessor
from pave.models.towers import hidden_states

_WEIGHT_INDEX, _WEIGHT_FILE = "model.safetensors.index.json", "model.safetensors"


# Where multimodal checkpoints keep the tower, in order of preference (Video-LLaVA has an image
# tower too, with the same shapes).
_TOWER_PREFIXES = ("video_tower.", "vision_tower.")
# Towers these encoders know how to run: CLIP and SigLIP (patch grid, optional class token).
_TOWER_TYPES = ("clip", "siglip")


def _tower_state_dict(model_id_or_path: str, expected: set[str]) -> dict[str, torch.Tensor]:
    """The vision-tower tensors of a checkpoint, keyed as in ``expected`` (the state dict of the
    standalone vision model), reading nothing else.

    A multimodal checkpoint names them ``[model.]vision_tower.[vision_model.]x`` (LLaVA) or
    ``[model.]video_tower.[vision_model.]x`` (Video-LLaVA's video tower); a CLIP/SigLIP checkpoint
    ``[vision_model.]x`` beside its text model. Checkpoints saved by transformers 4 and
    5 differ in the ``vision_model.`` part, so it is matched either way.
    """
    from safetensors import safe_open
    from transformers.utils import cached_file

    index = cached_file(model_id_or_path, _WEIGHT_INDEX, _raise_exceptions_for_missing_entries=False)
    if index is not None:
        weight_map = json.loads(open(index).read())["weight_map"]
        files = {cached_file(model_id_or_path, name) for name in set(weight_map.values())}
    else:
        files = {cached_file(model_id_or_path, _WEIGHT_FILE)}
    state = {}
    for file in sorted(files):
        with safe_open(file, framework="pt") as f:
            keys = list(f.keys())
            tower = next((p for p in _TOWER_PREFIXES if any(p in k for k in keys)), None)
            for key in keys:
                if tower is not None and tower not in key:
                    continue
                name = key.split(tower, 1)[-1] if tower else key
                for candidate in (name, name.removeprefix("vision_model."), f"vision_model.{name}"):
                    if candidate in expected:
                        state[candidate] = f.get_tensor(key)
                        break
    return state


@dataclass
class VisionTower:
    """A frozen vision tower with its preprocessing.

    feature_layer: which hidden state to use (the base model's ``vision_feature_layer``).
    drop_cls: drop the first token (``vision_feature_select_strategy == "default"`` in LLaVA, or
    a CLIP class token).
    """

    model: torch.nn.Module
    preprocess: VideoPreprocessor
    feature_layer: int
    drop_cls: bool
    name: str
    batch_size: int = 16

    def __post_init__(self):
        # Threads of an extraction share one tower; batches of frames are serialised through it so
        # that torch's intra-op threads, not Python threads, split the work of each forward.
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        feature_layer: int | None = None,
        batch_size: int = 16,
    ) -> VisionTower:
        """Load the vision tower of a multimodal checkpoint (e.g. a LLaVA-OneVision) or a
        standalone CLIP/SigLIP checkpoint, from a local folder or a model id."""
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(model_id_or_path)
        vision_config = getattr(config, "vision_config", config)
        if not getattr(vision_config, "model_type", "").startswith(_TOWER_TYPES):
            raise ValueError(
                f"{model_id_or_path}: the built-in vision-tower encoders run CLIP or SigLIP towers (LLaVA-OneVision, "
                f"LLaVA-Video, Video-LLaVA or a CLIP/SigLIP checkpoint), not {vision_config.model_type!r}; give "
                "one of those as the encoder's model, or extracted features"
            )
        if hasattr(config, "vision_feature_layer"):  # a LLaVA-style model: use its own choice
            layer = config.vision_feature_layer
            drop_cls = config.vision_feature_select_strategy == "default"
        else:  # CLIP-like towers carry a class token in front of the patches
            layer, drop_cls = -1, getattr(vision_config, "model_type", "").startswith("clip")
        if not isinstance(layer, int):
            raise ValueError(f"{model_id_or_path}: several vision feature layers {layer} are not supported")
        model = AutoModel.from_config(vision_config)
        # strict: a missing tensor is an error listing the missing keys, never a random init.
        model.load_state_dict(_tower_state_dict(model_id_or_path, set(model.state_dict())), strict=True)
        model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        return cls(
            model=model,
            preprocess=VideoPreprocessor.from_pretrained(model_id_or_path),
            feature_layer=layer if feature_layer is None else feature_layer,
            drop_cls=drop_cls,
            name=str(model_id_or_path).rstrip("/").split("/")[-1],
            batch_size=batch_size,
        )

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @property
    def patch_size(self) -> int:
        return self.model.config.patch_size

    def grid(self, size: int | None = None) -> tuple[int, int]:
        """(g_h, g_w) patches for input images of ``size`` pixels (default: the tower's own)."""
        side = (size or self.preprocess.size) // self.patch_size
        return side, side

    @torch.no_grad()
    def encode(self, frames: np.ndarray, size: int | None = None) -> torch.Tensor:
        """(T, H, W, 3) uint8 frames -> (T, g_h, g_w, C) float32 patch features.

        ``size`` runs the tower at another input size than its own, interpolating its position
        embeddings (SigLIP and CLIP support this)."""
        preprocess = (
            self.preprocess
            if size is None
            else VideoPreprocessor(
                size, self.preprocess.mean, self.preprocess.std, self.preprocess.rescale_factor
            )
        )
        g_h, g_w = self.grid(size)
        param = next(self.model.parameters())
        out = []
        for start in range(0, len(frames), self.batch_size):
            pixels = preprocess(frames[start : start + self.batch_size]).to(param.device, param.dtype)
            with self._lock:
                hidden = hidden_states(
                    self.model,
                    pixels,
                    self.feature_layer,
                    interpolate_pos_encoding=size is not None and size != self.preprocess.size,
                )
            if self.drop_cls:
                hidden = hidden[:, 1:]
            if hidden.shape[1] != g_h * g_w:
                raise ValueError(
                    f"{self.name}: {hidden.shape[1]} tokens per frame, expected a {g_h}x{g_w} grid"
                )
            out.append(hidden.float().cpu().view(-1, g_h, g_w, hidden.shape[-1]))
        return torch.cat(out)


def pool_grid(features: torch.Tensor, size: tuple[int, int], mode: str = "area") -> torch.Tensor:
    """(T, h, w, C) -> (T, size[0], size[1], C). ``area`` averages each output cell's patches;
    ``bilinear`` resamples as LLaVA-OneVision's own video pooling does."""
    x = features.permute(0, 3, 1, 2)
    x = F.adaptive_avg_pool2d(x, size) if mode == "area" else F.interpolate(x, size=size, mode=mode)
    return x.permute(0, 2, 3, 1).contiguous()


def llava_ov_pooled_grid(grid: tuple[int, int]) -> tuple[int, int]:
    """LLaVA-OneVision's video grid: each side halved, rounded up (27x27 -> 14x14 = 196)."""
    return math.ceil(grid[0] / 2), math.ceil(grid[1] / 2)
