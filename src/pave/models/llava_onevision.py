"""LLaVA-OneVision as a base model: where its visual tokens come from and where they go back.

transformers' ``LlavaOnevisionModel.get_video_features`` returns the projected, 2x2-pooled video
tokens followed by one ``image_newline`` token; ``forward`` and ``generate`` accept precomputed
features through ``mm_encoder_outputs={"video": ...}``. That pair is the seam a patch uses: we
take the tokens out, add the patches' deltas and hand them back, without copying model code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

# LoRA goes on the LLM's attention and MLP projections only (not the SigLIP tower, whose
# attention layers share the q/k/v/o names).
LORA_TARGET_MODULES = (
    r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
)


@dataclass
class VisualTokens:
    """The base model's visual tokens for a batch of videos, as a patch sees them.

    Attributes:
        tokens: (B, T, h, w, C_v) projected and pooled visual tokens.
        query_features: (B, T, h, w, C_q) vision-tower features before the projector, pooled to
            the same grid (the default source of a patch's queries).
        frame_times: optional (B, T) key-frame timestamps in seconds.
    """

    tokens: torch.Tensor
    query_features: torch.Tensor
    frame_times: torch.Tensor | None = None

    @classmethod
    def coerce(cls, value) -> VisualTokens:
        """Accept ``VisualTokens`` or the dict a collator produces (keys as the attributes)."""
        if isinstance(value, cls):
            return value
        return cls(value["tokens"], value["query_features"], value.get("frame_times"))

    def to(self, device=None, dtype=None) -> VisualTokens:
        return VisualTokens(
            self.tokens.to(device, dtype),
            self.query_features.to(device, dtype),
            None if self.frame_times is None else self.frame_times.to(device),
        )

    def __getitem__(self, index) -> VisualTokens:
        """Select samples (a slice or an index tensor) along the batch dimension."""
        times = None if self.frame_times is None else self.frame_times[index]
        return VisualTokens(self.tokens[index], self.query_features[index], times)


def visual_grid(config) -> tuple[int, int]:
    """(h, w) of the visual-token grid of one frame: the patch grid pooled 2x2 (ceil)."""
    side = config.vision_config.image_size // config.vision_config.patch_size
    return (math.ceil(side / 2), math.ceil(side / 2))


def tokens_per_frame(config) -> int:
    h, w = visual_grid(config)
    return h * w


def query_dim(config, source: str) -> int:
    """Width of the patch's query features for a query source."""
    if source == "vision":
        layers = config.vision_feature_layer
        return config.vision_config.hidden_size * (1 if isinstance(layers, int) else len(layers))
    return config.text_config.hidden_size


@torch.no_grad()
def encode_video(model, pixel_values_videos: torch.Tensor) -> VisualTokens:
    """Run the frozen vision path of a ``LlavaOnevisionForConditionalGeneration``.

    Args:
        model: the (unwrapped) transformers model.
        pixel_values_videos: (B, T, 3, S, S).
    """
    config = model.config
    inner = model.model
    batch, frames = pixel_values_videos.shape[:2]
    layer = config.vision_feature_layer
    out = inner.get_video_features(
        pixel_values_videos.to(inner.vision_tower.dtype), output_hidden_states=True, return_dict=True
    )
    hidden = out.hidden_states
    selected = hidden[layer] if isinstance(layer, int) else torch.cat([hidden[i] for i in layer], dim=-1)
    if config.vision_feature_select_strategy == "default":
        selected = selected[:, 1:]
    h, w = visual_grid(config)
    query = inner.apply_pooling(selected).view(batch, frames, h, w, -1)
    tokens = out.pooler_output[:, :-1].reshape(batch, frames, h, w, -1)  # drop the newline token
    return VisualTokens(tokens=tokens, query_features=query)


def video_encoder_outputs(
    model, tokens: torch.Tensor, extra: torch.Tensor | None = None
) -> dict[str, BaseModelOutputWithPooling]:
    """(B, T, h, w, C_v) tokens -> ``mm_encoder_outputs`` for forward/generate, with the model's
    newline token appended to each video exactly as ``get_video_features`` does, then the
    adapters' ``extra`` tokens (B, N_x, C_v) if any."""
    batch = tokens.shape[0]
    newline = model.model.image_newline.to(tokens.dtype).expand(batch, 1, -1)
    parts = (tokens.flatten(1, 3), newline) if extra is None else (tokens.flatten(1, 3), newline, extra.to(tokens.dtype))
    return {"video": BaseModelOutputWithPooling(pooler_output=torch.cat(parts, dim=1))}
