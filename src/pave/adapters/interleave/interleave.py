"""`InterleaveAdapter`: project side tokens to the LLM width and append them to the video's tokens.

This is the FT (interleave) row of the paper's Table 4: the side channel reaches the LLM as its
own tokens, as LLaVA-NeXT-Interleave feeds extra images, instead of being fused into the visual
tokens. The LLM then attends to them directly, at the price of a longer input: its prefill cost
grows with every side token.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from pave.adapters.base import AdapterOutput, TokenAdapter, TokenLayout
from pave.adapters.interleave.config import InterleaveConfig
from pave.patch.alignment import lengths_from_mask, lerp_frames


class InterleaveAdapter(TokenAdapter):
    """Side tokens -> T'_s * s_h * s_w extra LLM tokens.

    Each sample's valid side frames are resampled in time to ``side_frames`` (see
    :class:`InterleaveConfig`), then every token goes through Linear(C_s -> C_v), GELU,
    Linear(C_v -> C_v), the shape of LLaVA's multimodal projector. The visual tokens pass
    unchanged; the side tokens follow the video's newline token, in time order.
    """

    def __init__(self, config: InterleaveConfig) -> None:
        super().__init__()
        self.config = config
        width = config.output_dim
        self.projector = nn.Sequential(nn.Linear(config.side_dim, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, tokens, *, query_features=None, side=None, side_mask=None) -> AdapterOutput:
        """tokens (B, T, h, w, C_v), side (B, T_s, s_h, s_w, C_s), side_mask (B, T_s) ->
        the same tokens and extra (B, T'_s * s_h * s_w, C_v)."""
        cfg = self.config
        if side is None:
            raise ValueError("the interleave adapter needs side tokens (B, T_s, s_h, s_w, C_s)")
        if tuple(side.shape[2:]) != (*cfg.side_grid, cfg.side_dim):
            raise ValueError(
                f"side tokens {tuple(side.shape)} do not match the adapter's side_grid {cfg.side_grid} "
                f"and side_dim {cfg.side_dim}"
            )
        lengths = lengths_from_mask(side_mask, side.shape[0], side.shape[1], side.device)
        dtype = self.projector[0].weight.dtype
        side = resample_side(side.to(dtype), lengths, cfg.side_frames)  # (B, T'_s, s_h, s_w, C_s)
        extra = self.projector(side.flatten(1, 3))  # (B, T'_s * s_h * s_w, C_v)
        return AdapterOutput(tokens=tokens, extra=extra.to(tokens.dtype))

    def layout(self, layout: TokenLayout) -> TokenLayout:
        return dataclasses.replace(layout, extra=layout.extra + self.config.num_tokens)


def resample_side(side: torch.Tensor, lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Resample every sample's valid side frames to exactly ``num_frames`` along time.

    Linear interpolation with aligned end points, as :func:`pave.patch.alignment.interpolate_side`
    does for upsampling, but in both directions, so that every sample yields the same number of
    tokens whatever its length.

    Args:
        side: (B, T_s, ...) right-padded side tokens.
        lengths: (B,) valid side frames per sample (at least 1).
        num_frames: frames out.
    Returns:
        (B, num_frames, ...).
    """
    j = torch.arange(num_frames, device=side.device, dtype=torch.float32)
    scale = ((lengths - 1).float() / max(num_frames - 1, 1))[:, None]
    return lerp_frames(side, j * scale, lengths)
