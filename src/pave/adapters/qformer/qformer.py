"""`QFormerAdapter`: Video-LLaMA's video and audio Q-Formers on top of a video LLM.

Video-LLaMA turns frame features and audio clips into a few query tokens for a frozen LLM. Here
the same two branches are built on transformers' ``Blip2QFormerModel`` and their query outputs
are appended to the base model's own visual tokens, so the LLM sees
``[visual tokens] [newline] [video queries] [side queries]``. The visual tokens are kept because
the base is a video LLM already (Video-LLaMA's only visual input is its Q-Former); what the
comparison measures is the side channel entering through Q-Former queries.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from pave.adapters.base import AdapterOutput, TokenAdapter, TokenLayout
from pave.adapters.qformer.config import QFormerConfig
from pave.patch.alignment import lengths_from_mask


class QueryBranch(nn.Module):
    """Learned queries read a sequence of features through a Q-Former, then a Linear to C_v.

    The features get a learned position embedding per time step (frame or side frame) first,
    shared by all tokens of that step, as Video-LLaMA's frame and segment position tables do.
    """

    def __init__(self, config: QFormerConfig, encoder_dim: int, num_queries: int, max_steps: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, config.hidden_size) * 0.02)
        self.position = nn.Embedding(max_steps, encoder_dim)
        self.qformer = Blip2QFormerModel(
            Blip2QFormerConfig(
                hidden_size=config.hidden_size,
                num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads,
                intermediate_size=config.intermediate_size,
                encoder_hidden_size=encoder_dim,
                cross_attention_frequency=1,  # cross-attention in every layer, as Video-LLaMA
                hidden_dropout_prob=config.dropout,
                attention_probs_dropout_prob=config.dropout,
            )
        )
        self.projection = nn.Linear(config.hidden_size, config.output_dim)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """features (B, S, N, C_enc): S time steps of N tokens; mask (B, S) -> (B, Q, C_v)."""
        batch, steps, per_step, _ = features.shape
        if steps > self.position.num_embeddings:
            raise ValueError(
                f"{steps} time steps but the position table has {self.position.num_embeddings} rows; "
                "raise max_frames / max_side_frames in the QFormerConfig"
            )
        dtype = self.position.weight.dtype
        positions = self.position(torch.arange(steps, device=features.device))  # (S, C_enc)
        keys = (features.to(dtype) + positions[:, None]).flatten(1, 2)  # (B, S * N, C_enc)
        key_mask = None if mask is None else mask.repeat_interleave(per_step, dim=1).long()  # (B, S * N)
        out = self.qformer(
            query_embeds=self.queries.expand(batch, -1, -1),
            encoder_hidden_states=keys,
            encoder_attention_mask=key_mask,
        ).last_hidden_state  # (B, Q, hidden)
        return self.projection(out)


class QFormerAdapter(TokenAdapter):
    """Video Q-Former over the frame features and, with ``side_dim`` set, an audio (side)
    Q-Former over the side tokens; ``video_queries + side_queries`` extra LLM tokens."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.config = config
        self.video = QueryBranch(config, config.query_dim, config.video_queries, config.max_frames)
        self.side = (
            QueryBranch(config, config.side_dim, config.side_queries, config.max_side_frames)
            if config.uses_side
            else None
        )

    def forward(self, tokens, *, query_features=None, side=None, side_mask=None) -> AdapterOutput:
        """tokens (B, T, h, w, C_v); query_features (B, T, h, w, C_q); side (B, T_s, s_h, s_w,
        C_s) with side_mask (B, T_s) -> the same tokens and extra (B, Q_v [+ Q_s], C_v)."""
        if query_features is None:
            raise ValueError("the Q-Former adapter reads the frame features: pass query_features (B, T, h, w, C_q)")
        extra = [self.video(query_features.flatten(2, 3))]  # frames: (B, T, h * w, C_q)
        if self.side is not None:
            if side is None:
                raise ValueError("this Q-Former adapter has a side branch: pass side tokens (B, T_s, s_h, s_w, C_s)")
            if side_mask is not None:
                # Refuse a sample without side frames: all its keys would be masked.
                lengths_from_mask(side_mask, side.shape[0], side.shape[1], side.device)
            extra.append(self.side(side.flatten(2, 3), side_mask))
        return AdapterOutput(tokens=tokens, extra=torch.cat(extra, dim=1).to(tokens.dtype))

    def layout(self, layout: TokenLayout) -> TokenLayout:
        return dataclasses.replace(layout, extra=layout.extra + self.config.num_tokens)
