"""Temporal alignment: which side frames each key frame attends to.

Every key frame i of a sample gets a contiguous range ``[start_i, end_i)`` of that sample's side
frames. Ranges are computed for the whole batch at once from per-sample lengths (and
timestamps), so samples with different numbers of side frames share one code path.
"""

from __future__ import annotations

import torch


def lengths_from_mask(side_mask: torch.Tensor | None, batch: int, num_side: int, device) -> torch.Tensor:
    """Per-sample number of valid side frames (B,) from a (B, T_s) validity mask.

    Valid frames must come first (right padding), which is what collation produces.
    """
    if side_mask is None:
        return torch.full((batch,), num_side, dtype=torch.long, device=device)
    if side_mask.shape != (batch, num_side):
        raise ValueError(f"side_mask must have shape {(batch, num_side)}, got {tuple(side_mask.shape)}")
    side_mask = side_mask.bool()
    lengths = side_mask.sum(dim=1)
    prefix = torch.arange(num_side, device=device) < lengths[:, None]
    if not torch.equal(prefix, side_mask):
        raise ValueError("side_mask must mark a prefix of each sample's side frames as valid (right padding)")
    if (lengths == 0).any():
        raise ValueError(f"samples {torch.nonzero(lengths == 0).flatten().tolist()} have no side frames")
    return lengths


def chunk_ranges(lengths: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' rule: n side frames split into T contiguous chunks in order, chunk i holding
    ``n // T + (1 if i < n % T else 0)`` frames.

    Args:
        lengths: (B,) side frames per sample, each at least ``num_frames``.
        num_frames: T, key frames per sample.
    Returns:
        start, end: (B, T) each.
    """
    if (lengths < num_frames).any():
        raise ValueError(f"chunk alignment needs at least {num_frames} side frames per sample; interpolate first")
    i = torch.arange(num_frames, device=lengths.device)
    base, rem = (lengths // num_frames)[:, None], (lengths % num_frames)[:, None]
    start = i * base + torch.minimum(i, rem)
    return start, start + base + (i < rem).long()


def time_ranges(
    frame_times: torch.Tensor,
    side_timestamps: torch.Tensor,
    lengths: torch.Tensor,
    window: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranges from timestamps in seconds.

    Without ``window`` each side frame goes to the key frame nearest in time (ranges partition
    the side frames). With ``window`` key frame i takes every side frame within ``window / 2`` of
    it. A key frame whose range would be empty takes the single nearest side frame, so no query
    is ever left without keys.

    Args:
        frame_times: (B, T) key-frame timestamps, non-decreasing.
        side_timestamps: (B, T_s) side-frame timestamps, non-decreasing over each sample's valid prefix.
        lengths: (B,) valid side frames per sample.
    Returns:
        start, end: (B, T) each.
    """
    batch, num_side = side_timestamps.shape
    valid = torch.arange(num_side, device=side_timestamps.device) < lengths[:, None]
    side_timestamps = side_timestamps.float().masked_fill(~valid, float("inf"))
    frame_times = frame_times.float()
    if (side_timestamps.diff(dim=1) < 0).any():
        raise ValueError("side timestamps must be non-decreasing within each sample")
    if (frame_times.diff(dim=1) < 0).any():
        raise ValueError("key-frame timestamps must be non-decreasing within each sample")
    if window is None:
        # Cell boundaries halfway between consecutive key frames.
        inf = torch.full((batch, 1), float("inf"), device=frame_times.device)
        mid = (frame_times[:, 1:] + frame_times[:, :-1]) / 2
        lo, hi = torch.cat((-inf, mid), dim=1), torch.cat((mid, inf), dim=1)
        start = torch.searchsorted(side_timestamps, lo.contiguous())
        end = torch.searchsorted(side_timestamps, hi.contiguous())
    else:
        start = torch.searchsorted(side_timestamps, (frame_times - window / 2).contiguous())
        end = torch.searchsorted(side_timestamps, (frame_times + window / 2).contiguous(), right=True)
    end = torch.minimum(end, lengths[:, None])
    start = torch.minimum(start, end)
    empty = end <= start
    if empty.any():
        distance = (side_timestamps[:, None, :] - frame_times[:, :, None]).abs()  # (B, T, T_s), inf when padded
        nearest = distance.argmin(dim=-1)
        start = torch.where(empty, nearest, start)
        end = torch.where(empty, nearest + 1, end)
    return start, end


def interpolate_side(
    side: torch.Tensor, lengths: torch.Tensor, num_frames: int, side_timestamps: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Resample samples with fewer than T side frames to exactly T frames along time.

    Linear interpolation with aligned end points (``align_corners=True``); a single side frame is
    repeated. Samples that already have T or more frames are left as they are.

    Args:
        side: (B, T_s, N, C) side tokens.
        lengths: (B,) valid side frames per sample.
        num_frames: T.
        side_timestamps: optional (B, T_s) timestamps, resampled the same way.
    Returns:
        side (B, max(T_s, T), N, C), lengths (B,), side_timestamps or None.
    """
    short = lengths < num_frames
    if not short.any():
        return side, lengths, side_timestamps
    num_side = side.shape[1]
    j = torch.arange(max(num_side, num_frames), device=side.device, dtype=torch.float32)
    # Source position of output frame j: j * (n - 1) / (T - 1) for short samples, j otherwise.
    scale = ((lengths - 1).clamp(min=0).float() / max(num_frames - 1, 1))[:, None]
    pos = torch.where(short[:, None], j * scale, j)
    new_lengths = torch.clamp(lengths, min=num_frames)
    new_times = lerp_frames(side_timestamps.float(), pos, lengths) if side_timestamps is not None else None
    return lerp_frames(side, pos, lengths), new_lengths, new_times


def lerp_frames(x: torch.Tensor, pos: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Linear interpolation along time at fractional frame positions.

    Args:
        x: (B, T_s, ...) right-padded frames.
        pos: (B, N) source positions; clamped to each sample's last valid frame.
        lengths: (B,) valid frames per sample (at least 1).
    Returns:
        (B, N, ...).
    """
    batch, num = pos.shape
    last = (lengths - 1)[:, None]
    pos = torch.minimum(pos, last.float())
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, last)
    shape = (batch, num) + (1,) * (x.dim() - 2)
    expand = (batch, num, *x.shape[2:])
    lo_x = torch.gather(x, 1, lo.view(shape).expand(expand))
    hi_x = torch.gather(x, 1, hi.view(shape).expand(expand))
    return lo_x + (hi_x - lo_x) * (pos - lo).view(shape).to(x.dtype)
