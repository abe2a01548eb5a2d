"""`PoolingAdapter`: PLLaVA's adaptive structure pooling of the visual tokens.

PLLaVA pools the projected (T, h, w) token volume of a video with ``AdaptiveAvgPool3d`` before
the LLM, which smooths the high-norm dominant tokens that otherwise grow during video training
and cuts the LLM's input; LoRA then adapts the LLM to the pooled tokens. The adapter has no
weights: with pooling, the trainable parameters are LoRA's.
"""

from __future__ import annotations

import dataclasses

import torch.nn.functional as F

from pave.adapters.base import AdapterOutput, TokenAdapter, TokenLayout
from pave.adapters.pooling.config import PoolingConfig


class PoolingAdapter(TokenAdapter):
    """(B, T, h, w, C_v) -> (B, T', h', w', C_v) by adaptive average pooling; no extra tokens.

    A target larger than the input along an axis repeats tokens (PLLaVA repeats frames of short
    clips the same way).
    """

    def __init__(self, config: PoolingConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, tokens, *, query_features=None, side=None, side_mask=None) -> AdapterOutput:
        frames = self.config.frames or tokens.shape[1]
        volume = tokens.permute(0, 4, 1, 2, 3)  # (B, C_v, T, h, w)
        pooled = F.adaptive_avg_pool3d(volume, (frames, *self.config.grid))  # (B, C_v, T', h', w')
        return AdapterOutput(tokens=pooled.permute(0, 2, 3, 4, 1))

    def layout(self, layout: TokenLayout) -> TokenLayout:
        return dataclasses.replace(layout, grid=self.config.grid, frames=self.config.frames or layout.frames)
