"""Temporal-aligned cross-attention, batched over samples and key frames.

Shapes used throughout (a legend shared with :mod:`pave.patch.patch`):

    B    samples              T    key frames per sample      Nq   query tokens per key frame
    T_s  side frames (padded) N_s  side tokens per side frame  H    heads        hd  head width
    L    side frames in the longest window of the batch

Each key frame's window is gathered into a dense (L * N_s)-token block with a padding mask, so
memory grows with the number of side tokens (about T_s * N_s + T * N_s), never with T * T_s * N_s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class WindowIndex:
    """The side frames gathered for every key frame.

    Attributes:
        frames: (B, T, L) index of the side frame in each slot (clamped where padded).
        valid: (B, T, L) whether the slot holds a frame of the key frame's window.
        tiled: every sample's windows are the consecutive, equal blocks ``[i * L, (i + 1) * L)``
            (3D frames, multi-view, any chunking where T divides T_s): gathering is then a view.
        full: no slot is padding.
    """

    frames: torch.Tensor
    valid: torch.Tensor
    tiled: bool = False
    full: bool = False

    @classmethod
    def from_ranges(cls, start: torch.Tensor, end: torch.Tensor, num_side: int) -> WindowIndex:
        width = int((end - start).max())
        frames = start[..., None] + torch.arange(width, device=start.device)
        valid = frames < end[..., None]
        full = bool(valid.all())
        blocks = torch.arange(start.shape[-1], device=start.device) * width
        tiled = full and bool((start == blocks).all())
        return cls(frames=frames.clamp(max=num_side - 1), valid=valid, tiled=tiled, full=full)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T_s, N_s, ...) -> (B, T, L, N_s, ...): each key frame's window of ``x``."""
        if self.tiled:
            frames, width = self.frames.shape[1:]
            # Slice only when needed: the backward of a slice allocates and zero-fills all of x.
            x = x if x.shape[1] == frames * width else x[:, : frames * width]
            return x.unflatten(1, (frames, width))
        batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
        return x[batch, self.frames]


def aligned_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: WindowIndex,
    dropout: float = 0.0,
    return_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each key frame's queries attend to the side tokens of its window only.

    Args:
        q: (B, T, Nq, H, hd) queries.
        k, v: (B, T_s, N_s, H, hd) keys and values of all side frames (``v`` may be ``k``:
            values from the key projection, gathered once).
        window: which side frames each key frame sees.
        return_weights: also return the attention weights (computed explicitly instead of
            through ``F.scaled_dot_product_attention``).
    Returns:
        out: (B, T, Nq, H * hd).
        weights: (B, T, H, Nq, L * N_s) or None; padded slots have weight 0.
    """
    batch, frames, num_q, heads, head_dim = q.shape
    num_side_tokens = k.shape[2]
    # (B, T, L, N_s, H, hd) -> (B * T, H, L * N_s, hd)
    k_win = window.gather(k).flatten(2, 3).permute(0, 1, 3, 2, 4).flatten(0, 1)
    v_win = k_win if v is k else window.gather(v).flatten(2, 3).permute(0, 1, 3, 2, 4).flatten(0, 1)
    q = q.permute(0, 1, 3, 2, 4).flatten(0, 1)  # (B * T, H, Nq, hd)
    # (B, T, L) -> (B * T, 1, 1, L * N_s): every token of a valid side frame is a valid key.
    mask = None
    if not window.full:
        mask = window.valid[..., None].expand(-1, -1, -1, num_side_tokens).flatten(2).flatten(0, 1)[:, None, None]
    if return_weights:
        scores = (q @ k_win.transpose(-1, -2)) * head_dim**-0.5
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        out = F.dropout(weights, dropout) @ v_win
        weights = weights.view(batch, frames, heads, num_q, -1)
    else:
        out = F.scaled_dot_product_attention(q, k_win, v_win, attn_mask=mask, dropout_p=dropout)
        weights = None
    out = out.view(batch, frames, heads, num_q, head_dim).permute(0, 1, 3, 2, 4).flatten(3)
    return out, weights
