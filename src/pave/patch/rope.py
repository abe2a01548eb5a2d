"""Rotary position embeddings over one or several axes (time; or time, height, width).

The head dimension is split into sections, one per axis; each section rotates its pairs of
channels by angles proportional to the token's position on that axis. Positions are floats, so
queries and keys on different grids can share one coordinate system (see :func:`grid_positions`).
"""

from __future__ import annotations

import torch
from torch import nn


def rope_sections(head_dim: int, mode: str) -> tuple[int, ...]:
    """Number of channel pairs per axis: all on time for ``"temporal"``; for ``"3d"`` a quarter on
    time and three eighths on each spatial axis (spatial axes carry more distinct positions)."""
    pairs = head_dim // 2
    if mode == "temporal":
        return (pairs,)
    if mode == "3d":
        spatial = max(1, (3 * pairs) // 8)
        return (pairs - 2 * spatial, spatial, spatial)
    raise ValueError(f"no rotary sections for mode {mode!r}")


class RotaryEmbedding(nn.Module):
    """Multi-axis rotary embedding.

    Args:
        head_dim: channels per head (even).
        sections: channel pairs per axis, summing to ``head_dim // 2``.
        theta: rotary base.
    """

    def __init__(self, head_dim: int, sections: tuple[int, ...], theta: float = 10000.0) -> None:
        super().__init__()
        if sum(sections) * 2 != head_dim:
            raise ValueError(f"rotary sections {sections} do not cover head_dim {head_dim}")
        self.sections = tuple(sections)
        inv_freq = torch.cat([1.0 / theta ** (torch.arange(s, dtype=torch.float64) / s) for s in sections])
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    @property
    def num_axes(self) -> int:
        return len(self.sections)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (..., N, head_dim) by ``positions`` (..., N, num_axes).

        ``positions`` broadcasts against ``x`` without its last dimension (e.g. shared by heads).
        """
        return rotate(x, *self.angles(positions))

    def angles(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotation at ``positions`` (..., N, num_axes) as cos and signed sin (..., N, head_dim):
        channel pair (i, i + head_dim / 2) turns by angle a_i, so the cos is ``[cos a, cos a]`` and
        the signed sin ``[-sin a, sin a]``. Compute them once to rotate several tensors at the same
        positions (:func:`rotate`)."""
        # One position per channel pair: the axis owning that pair.
        axis_of_pair = torch.repeat_interleave(
            torch.arange(self.num_axes, device=positions.device),
            torch.tensor(self.sections, device=positions.device),
        )
        angles = positions.float()[..., axis_of_pair] * self.inv_freq
        cos, sin = angles.cos(), angles.sin()
        return torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the channel pairs (i, i + head_dim / 2) of ``x`` (..., head_dim) by precomputed
    :meth:`RotaryEmbedding.angles` ``cos``, ``sin`` (..., head_dim), broadcast against ``x``; the
    result is contiguous."""
    return _Rotation.apply(x, cos.to(x.dtype), sin.to(x.dtype))


class _Rotation(torch.autograd.Function):
    """A rotation's gradient is the inverse rotation of the output gradient (the same cos, the
    signed sin negated), so backward needs only the angles: nothing of the size of ``x`` is kept
    alive for it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotated(x, cos, sin)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return _rotated(grad, cos, -sin), None, None


def _rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x * cos + [x2, x1] * sin`` for halves ``x1, x2`` of ``x``: the swapped halves are copied
    into the output, which two full-width in-place passes then finish. Full-width passes run over
    long contiguous rows; passes over the halves (the plain formula) are several times slower on
    CPUs in bfloat16."""
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    x1, x2 = x.chunk(2, dim=-1)
    out1, out2 = out.chunk(2, dim=-1)
    out1.copy_(x2)
    out2.copy_(x1)
    return out.mul_(sin).addcmul_(x, cos)


def grid_positions(rows: int, cols: int, common_rows: int, common_cols: int, device=None) -> torch.Tensor:
    """(rows * cols, 2) positions of the cell centres of a rows x cols grid, in units of a
    ``common_rows x common_cols`` grid covering the same image: a 14x14 query grid and a 2x2
    key grid then agree on where the top-left quarter of the frame is."""
    y = (torch.arange(rows, device=device, dtype=torch.float32) + 0.5) * (common_rows / rows)
    x = (torch.arange(cols, device=device, dtype=torch.float32) + 0.5) * (common_cols / cols)
    return torch.stack(torch.meshgrid(y, x, indexing="ij"), dim=-1).reshape(rows * cols, 2)
