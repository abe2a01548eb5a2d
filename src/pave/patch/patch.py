"""`PavePatch`: the temporal-aligned cross-attention patch of PAVE (paper Sec. 3.3, App. B.1).

Legend (see also :mod:`pave.patch.attention`): B samples, T key frames, (h, w) visual-token grid,
C_v visual-token width, C_q query-feature width, T_s side frames, (s_h, s_w) side-token grid,
C_s side-token width, d patch width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from pave.patch.alignment import chunk_ranges, interpolate_side, lengths_from_mask, time_ranges
from pave.patch.attention import WindowIndex, aligned_attention
from pave.patch.config import PatchConfig
from pave.patch.rope import RotaryEmbedding, grid_positions, rope_sections, rotate

#: Key frames per recomputed piece of the output MLP (``PatchConfig.recompute``).
RECOMPUTE_FRAMES = 8


@dataclass
class PatchAttention:
    """Cross-attention weights of one forward pass, for heatmaps.

    Attributes:
        weights: one (B, T, H, h * w, L * N_s) tensor per layer; slot ``l * N_s + n`` of key frame
            i is token n of side frame ``window.frames[b, i, l]``.
        window: the side frames each key frame attended to (after any interpolation).
        side_grid: (s_h, s_w) of the side tokens.
    """

    weights: list[torch.Tensor]
    window: WindowIndex
    side_grid: tuple[int, int]


@dataclass
class PatchOutput:
    """delta: (B, T, h, w, C_v), to be added to the visual tokens; attention: see above."""

    delta: torch.Tensor
    attention: PatchAttention | None = None


class CrossAttentionLayer(nn.Module):
    """Cross-attention from key-frame queries to their windows of side tokens, then a bias-free
    pre-norm feed-forward; both residual. Shapes: h (B, T, Nq, d), memory (B, T_s, N_s, d)."""

    def __init__(self, config: PatchConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.attn = nn.Module()
        self.attn.q_linear = nn.Linear(d, d)
        self.attn.k_linear = nn.Linear(d, d)
        self.attn.v_linear = nn.Linear(d, d)
        # Indices 0, 1, 3 match the parameter names of the authors' checkpoints (2 is the GELU).
        self.ffn = nn.Sequential(
            nn.LayerNorm(d, eps=config.layer_norm_eps),
            nn.Linear(d, config.ffn_dim, bias=False),
            nn.GELU(),
            nn.Linear(config.ffn_dim, d, bias=False),
            nn.Dropout(config.dropout),
        )
        self.num_heads = config.num_heads
        self.value_from_key = config.value_from_key
        self.dropout = config.dropout

    def forward(
        self,
        h: torch.Tensor,
        memory: torch.Tensor,
        window: WindowIndex,
        q_rot: tuple[torch.Tensor, torch.Tensor] | None,
        k_rot: tuple[torch.Tensor, torch.Tensor] | None,
        return_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        heads = self.num_heads
        q = self.attn.q_linear(h).unflatten(-1, (heads, -1))  # (B, T, Nq, H, hd)
        k = self.attn.k_linear(memory).unflatten(-1, (heads, -1))  # (B, T_s, N_s, H, hd)
        v = k if self.value_from_key else self.attn.v_linear(memory).unflatten(-1, (heads, -1))
        if q_rot is not None:
            # Angles (..., N, 1, hd) broadcast over heads.
            q, k = rotate(q, *q_rot), rotate(k, *k_rot)
        out, weights = aligned_attention(
            q, k, v, window, dropout=self.dropout if self.training else 0.0, return_weights=return_weights
        )
        h = h + out
        return h + self.ffn(h), weights


class PavePatch(nn.Module):
    """The PAVE patch: fuses side-channel tokens into the visual tokens of a video LLM.

    ``V' = V + f(V, S)``: queries come from the key frames (vision features, visual tokens or
    learned), keys and values from the side tokens of each key frame's temporal window. The
    output passes a two-layer MLP d -> C_v and a LayerNorm whose gain and bias start at zero, so
    a new patch returns an all-zero delta and the patched model equals the base model.
    """

    def __init__(self, config: PatchConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.input_mapping = nn.Linear(config.side_dim, d)
        if config.query_source == "learnable":
            h, w = config.query_grid
            self.learnable_query = nn.Parameter(torch.randn(h * w, d) * d**-0.5)
        else:
            self.query_input_mapping = nn.Linear(config.query_dim, d)
        self.cross_attn_layers = nn.ModuleList(CrossAttentionLayer(config) for _ in range(config.num_layers))
        self.output_mapping = nn.Sequential(
            nn.Linear(d, config.output_mlp_dim),
            nn.GELU(),
            nn.Linear(config.output_mlp_dim, config.output_dim),
        )
        self.output_norm = nn.LayerNorm(config.output_dim, eps=config.layer_norm_eps)
        nn.init.zeros_(self.output_norm.weight)
        nn.init.zeros_(self.output_norm.bias)
        self.rope = (
            None
            if config.rope == "none"
            else RotaryEmbedding(config.head_dim, rope_sections(config.head_dim, config.rope), config.rope_theta)
        )

    def forward(
        self,
        visual: torch.Tensor,
        side: torch.Tensor,
        *,
        query_features: torch.Tensor | None = None,
        side_mask: torch.Tensor | None = None,
        frame_times: torch.Tensor | None = None,
        side_timestamps: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> PatchOutput:
        """Compute the update of the visual tokens.

        Args:
            visual: (B, T, h, w, C_v) visual tokens of the key frames.
            side: (B, T_s, s_h, s_w, C_s) side tokens; s_h = s_w = 1 for temporal signals.
            query_features: (B, T, h, w, C_q) features the queries come from when
                ``query_source="vision"``.
            side_mask: (B, T_s) True for real side frames, False for right padding.
            frame_times: (B, T) key-frame timestamps in seconds (``alignment="time"``).
            side_timestamps: (B, T_s) side-frame timestamps in seconds (``alignment="time"``).
            return_attention: also return the attention weights of every layer.
        Returns:
            :class:`PatchOutput` with ``delta`` shaped like ``visual``.
        """
        cfg = self.config
        if visual.dim() != 5 or side.dim() != 5:
            raise ValueError(
                f"expected visual (B, T, h, w, C_v) and side (B, T_s, s_h, s_w, C_s), "
                f"got {tuple(visual.shape)} and {tuple(side.shape)}"
            )
        batch, frames, grid_h, grid_w, _ = visual.shape
        _, num_side, side_h, side_w, side_dim = side.shape
        if side.shape[0] != batch:
            raise ValueError(f"visual has {batch} samples but side has {side.shape[0]}")
        if side_dim != cfg.side_dim:
            raise ValueError(f"side tokens have {side_dim} channels, the patch expects side_dim={cfg.side_dim}")
        dtype = self.input_mapping.weight.dtype
        queries = self._queries(visual, query_features).to(dtype)  # (B, T, h * w, d)

        memory = self.input_mapping(side.to(dtype).flatten(2, 3))  # (B, T_s, N_s, d)
        lengths = lengths_from_mask(side_mask, batch, num_side, side.device)
        if cfg.alignment == "chunk":
            memory, lengths, _ = interpolate_side(memory, lengths, frames)
            start, end = chunk_ranges(lengths, frames)
        else:
            if frame_times is None or side_timestamps is None:
                raise ValueError("alignment='time' needs frame_times (B, T) and side_timestamps (B, T_s)")
            start, end = time_ranges(frame_times, side_timestamps, lengths, cfg.time_window)
        window = WindowIndex.from_ranges(start, end, memory.shape[1])

        q_rot = k_rot = None
        if self.rope is not None:
            # The same positions in every layer: compute the rotation angles once.
            q_pos, k_pos = self._positions(start, end, memory.shape[1], (grid_h, grid_w), (side_h, side_w))
            q_rot, k_rot = (tuple(t.to(dtype) for t in self.rope.angles(pos[..., None, :])) for pos in (q_pos, k_pos))

        recompute = cfg.recompute and self.training and torch.is_grad_enabled() and not return_attention
        h, weights = queries, []
        for layer in self.cross_attn_layers:
            if recompute:
                h, w = checkpoint(layer, h, memory, window, q_rot, k_rot, use_reentrant=False)
            else:
                h, w = layer(h, memory, window, q_rot, k_rot, return_weights=return_attention)
            weights.append(w)
        if recompute:
            # The output MLP widens every query to C_v (3584 for 7B): recompute it a few key
            # frames at a time, so its backward holds a fraction of those activations at once.
            parts = h.split(RECOMPUTE_FRAMES, dim=1)
            delta = torch.cat([checkpoint(self._output, part, use_reentrant=False) for part in parts], dim=1)
        else:
            delta = self._output(h)
        delta = delta.view(batch, frames, grid_h, grid_w, cfg.output_dim)
        attention = PatchAttention(weights, window, (side_h, side_w)) if return_attention else None
        return PatchOutput(delta=delta.to(visual.dtype), attention=attention)

    def _output(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, Nq, d) -> (B, T, Nq, C_v): the output MLP and LayerNorm."""
        return self.output_norm(self.output_mapping(h))

    def _queries(self, visual: torch.Tensor, query_features: torch.Tensor | None) -> torch.Tensor:
        cfg = self.config
        batch, frames, grid_h, grid_w, _ = visual.shape
        if cfg.query_source == "learnable":
            if (grid_h, grid_w) != cfg.query_grid:
                raise ValueError(
                    f"learnable queries are for a {cfg.query_grid} grid, got visual grid {(grid_h, grid_w)}"
                )
            return self.learnable_query.expand(batch, frames, -1, -1)
        source = visual if cfg.query_source == "projected" else query_features
        if source is None:
            raise ValueError("query_source='vision' needs query_features (B, T, h, w, C_q)")
        if source.shape[:4] != visual.shape[:4]:
            raise ValueError(
                f"query_features {tuple(source.shape)} must share (B, T, h, w) with visual {tuple(visual.shape)}"
            )
        if source.shape[-1] != cfg.query_dim:
            raise ValueError(
                f"query features have {source.shape[-1]} channels, the patch expects query_dim={cfg.query_dim}"
            )
        return self.query_input_mapping(source.to(self.query_input_mapping.weight.dtype).flatten(2, 3))

    def _positions(
        self,
        start: torch.Tensor,
        end: torch.Tensor,
        num_side: int,
        query_grid: tuple[int, int],
        side_grid: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Query positions (B, T, h * w, axes) and key positions (1, T_s, N_s, axes) on one grid.

        Time is counted in side frames; a key frame sits at the centre of its window, so it is
        nearest to the side frames it attends to. Space is counted in cells of the finer grid.
        """
        device = start.device
        q_t = ((start + end - 1).float() / 2)[..., None, None]  # (B, T, 1, 1)
        k_t = torch.arange(num_side, device=device, dtype=torch.float32)[None, :, None, None]  # (1, T_s, 1, 1)
        n_q, n_k = query_grid[0] * query_grid[1], side_grid[0] * side_grid[1]
        if self.rope.num_axes == 1:
            return q_t.expand(-1, -1, n_q, 1), k_t.expand(-1, -1, n_k, 1)
        rows, cols = max(query_grid[0], side_grid[0]), max(query_grid[1], side_grid[1])
        q_xy = grid_positions(*query_grid, rows, cols, device)  # (h * w, 2)
        k_xy = grid_positions(*side_grid, rows, cols, device)  # (N_s, 2)
        q_pos = torch.cat((q_t.expand(*start.shape, n_q, 1), q_xy.expand(*start.shape, -1, -1)), dim=-1)
        k_pos = torch.cat((k_t.expand(1, num_side, n_k, 1), k_xy.expand(1, num_side, -1, -1)), dim=-1)
        return q_pos, k_pos


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = ["PavePatch", "PatchOutput", "PatchAttention", "CrossAttentionLayer", "count_parameters"]
