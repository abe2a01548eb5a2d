"""LLaVA-OneVision as a base model: where its visual tokens come from and where they go back.

transformers' ``LlavaOnevisionModel.get_video_features`` returns the projected, 2x2-pooled video
tokens followed by one ``image_newline`` token; ``forward`` and ``generate`` accept precomputed
features through ``mm_encoder_outputs={"video": ...}``. That pair is the seam a patch uses: we
take the tokens out, add the patches' deltas and hand them back, without copying model code.
"""

from __future__ import annotations

import math

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from pave.models.towers import hidden_states
from pave.tokens import VisualTokens

# The system message LLaVA-OneVision was trained with (its conversation template).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

#: The Linear layers of each LLM layer that LoRA adapts: attention, then MLP projections.
LORA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
LORA_MLP = ("gate_proj", "up_proj", "down_proj")
# LoRA goes on the LLM's projections only (not the SigLIP tower, whose attention layers share the
# q/k/v/o names).
LORA_TARGET_MODULES = (
    rf".*language_model\.layers\.\d+\.(self_attn\.({'|'.join(LORA_ATTENTION)})|mlp\.({'|'.join(LORA_MLP)}))"
)


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
def encode_video(model, pixel_values_videos: torch.Tensor, chunk_frames: int = 16) -> VisualTokens:
    """Run the frozen vision path of a ``LlavaOnevisionForConditionalGeneration``.

    The same tokens as ``get_video_features`` (a test checks it), computed ``chunk_frames``
    frames at a time from the one vision layer the model reads, so memory stays flat in the
    number of frames: ``get_video_features`` needs every hidden state of every frame at once.

    Args:
        model: the (unwrapped) transformers model.
        pixel_values_videos: (B, T, 3, S, S).
        chunk_frames: frames through the vision tower at once.
    """
    config = model.config
    inner = model.model
    batch, frames = pixel_values_videos.shape[:2]
    flat = pixel_values_videos.flatten(0, 1).to(inner.vision_tower.dtype)
    tokens, queries = [], []
    for chunk in flat.split(chunk_frames):
        selected = hidden_states(inner.vision_tower, chunk, config.vision_feature_layer)
        if config.vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        queries.append(inner.apply_pooling(selected))
        tokens.append(inner.apply_pooling(inner.multi_modal_projector(selected)))
    h, w = visual_grid(config)
    return VisualTokens(
        tokens=torch.cat(tokens).view(batch, frames, h, w, -1),
        query_features=torch.cat(queries).view(batch, frames, h, w, -1),
    )


def video_encoder_outputs(
    model, tokens: torch.Tensor, extra: torch.Tensor | None = None, newline: str = "one_token"
) -> dict[str, BaseModelOutputWithPooling]:
    """(B, T, h, w, C_v) tokens -> ``mm_encoder_outputs`` for forward/generate: the tokens with
    the model's newline token where ``newline`` puts it (``"one_token"``: once after the video,
    exactly as ``get_video_features`` does; ``"grid"``: after every row of every frame, as the
    authors' LLaVA-OneVision code with ``mm_newline_position=grid``; ``"frame"``: after every
    frame; ``"no_token"``: none), then the adapters' ``extra`` tokens (B, N_x, C_v) if any."""
    batch, frames, rows, _, width = tokens.shape
    line = model.model.image_newline.to(tokens.dtype)
    if newline == "grid":
        video = torch.cat([tokens, line.expand(batch, frames, rows, 1, width)], dim=3).flatten(1, 3)
    elif newline == "frame":
        video = torch.cat([tokens.flatten(2, 3), line.expand(batch, frames, 1, width)], dim=2).flatten(1, 2)
    elif newline == "one_token":
        video = torch.cat([tokens.flatten(1, 3), line.expand(batch, 1, width)], dim=1)
    elif newline == "no_token":
        video = tokens.flatten(1, 3)
    else:
        raise ValueError(f"unknown newline position {newline!r}")
    parts = (video,) if extra is None else (video, extra.to(tokens.dtype))
    return {"video": BaseModelOutputWithPooling(pooler_output=torch.cat(parts, dim=1))}
