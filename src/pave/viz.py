"""Cross-attention heatmaps of a patch (paper Figure 4).

For chosen query tokens of one key frame, how much attention the patch pays to each side token
of that key frame's temporal window: drawn as a grid per side frame for spatial side channels
(dense video, 3D, exo views), over the side frames' images when they are given, and along time
for temporal ones (audio). The query tokens are outlined on the key frame, as the red cells of
the paper's figure.

Legend (as :mod:`pave.patch`): B samples, T key frames, (h, w) visual-token grid, H heads,
L side frames in a window, (s_h, s_w) side-token grid, N_s = s_h * s_w, T_s side frames.

The numbers come from :class:`~pave.patch.PatchAttention` (``PatchedModel.patched_tokens(...,
return_attention=True)``); drawing needs matplotlib (``pip install 'pave-patches[viz]'``) and
renders with its Agg back-end, so no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pave.patch import PatchAttention

# Query tokens: flat indices into the (h, w) grid, or (row, column) pairs.
Queries = Sequence[int] | Sequence[tuple[int, int]]


@dataclass
class WindowAttention:
    """Attention of chosen query tokens of one key frame over the side tokens of its window.

    Attributes:
        weights: (L, s_h, s_w) mean attention weight of each side token (over the chosen
            queries, heads and layers); sums to 1 over the window.
        frames: (L,) index of each side frame among the patch's side frames (after the
            interpolation in time that a side channel shorter than T gets).
        timestamps: (L,) seconds of each side frame, or None when no side timestamps were given.
        key_frame: the key frame the queries belong to.
        queries: (Q,) flat indices of the query tokens in the (h, w) grid.
        query_grid: (h, w).
        interpolated: (T_s, T) when the side channel had fewer frames than the T key frames and
            the patch read it interpolated in time; ``frames``, ``weights`` and ``timestamps`` are then
            mapped back onto its T_s real frames (each interpolated frame's weight split between
            the two real frames it was made of, with the interpolation's own coefficients).
    """

    weights: np.ndarray
    frames: np.ndarray
    timestamps: np.ndarray | None
    key_frame: int
    queries: np.ndarray
    query_grid: tuple[int, int]
    interpolated: tuple[int, int] | None = None

    @property
    def temporal(self) -> bool:
        """True for side channels without a spatial grid (one token per side frame)."""
        return self.weights.shape[1:] == (1, 1)


def window_attention(
    attention: PatchAttention,
    key_frame: int,
    query_grid: tuple[int, int],
    queries: Queries | None = None,
    layer: int | None = None,
    head: int | None = None,
    side_timestamps: torch.Tensor | np.ndarray | None = None,
    sample: int = 0,
) -> WindowAttention:
    """Reduce a patch's attention weights to one key frame's window.

    Args:
        attention: the weights of one forward pass, per layer (B, T, H, h * w, L * N_s).
        key_frame: which key frame (0 .. T - 1).
        query_grid: (h, w) of the visual tokens, to read (row, column) queries.
        queries: the query tokens to average over; None for every token of the key frame.
        layer, head: pick one layer / head; None averages over all of them.
        side_timestamps: (T_s,) seconds of the side frames as given to the patch.
        sample: which sample of the batch.
    """
    h, w = query_grid
    num_frames = attention.window.frames.shape[1]
    if not 0 <= key_frame < num_frames:
        raise ValueError(f"key_frame must be in [0, {num_frames}), got {key_frame}")
    flat = _flat_queries(queries, query_grid)
    layers = attention.weights if layer is None else [attention.weights[layer]]
    # (H, h * w, L * N_s), averaged over the chosen layers
    weights = torch.stack([x[sample, key_frame].detach().float() for x in layers]).mean(0)
    if weights.shape[1] != h * w:
        raise ValueError(f"attention has {weights.shape[1]} query tokens per frame, not {h}x{w}")
    weights = weights.mean(0) if head is None else weights[head]  # (h * w, L * N_s)
    weights = weights[torch.as_tensor(flat)].mean(0)  # (L * N_s,)
    s_h, s_w = attention.side_grid
    valid = attention.window.valid[sample, key_frame].cpu()
    frames = attention.window.frames[sample, key_frame].cpu()[valid].numpy()
    weights = weights.view(-1, s_h, s_w).cpu()[valid].numpy()
    if side_timestamps is not None and len(side_timestamps) < num_frames:
        frames, weights = to_real_frames(frames, weights, len(side_timestamps), num_frames)
        times = np.asarray(side_timestamps, dtype=np.float64)[frames]
        return WindowAttention(weights, frames, times, key_frame, flat, (h, w), (len(side_timestamps), num_frames))
    times = None if side_timestamps is None else slot_times(frames, side_timestamps, num_frames)
    return WindowAttention(weights, frames, times, key_frame, flat, (h, w))


def to_real_frames(
    frames: np.ndarray, weights: np.ndarray, num_side: int, num_key_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Attention on interpolated side frames -> attention on the real frames they were made of.

    Interpolated frame j is ``(1 - a) * s[lo] + a * s[lo + 1]`` at source position
    ``j * (T_s - 1) / (T - 1)`` (:func:`pave.patch.alignment.interpolate_side`), so its weight is
    split between frames lo and lo + 1 in those proportions. Returns the real frames touched,
    in order, and their (n, ...) weights; the total is unchanged.
    """
    positions = np.asarray(frames, dtype=np.float64) * (num_side - 1) / max(num_key_frames - 1, 1)
    lo = np.floor(positions).astype(int)
    hi = np.minimum(lo + 1, num_side - 1)
    share = (positions - lo).reshape(-1, *([1] * (weights.ndim - 1)))
    real = np.zeros((num_side, *weights.shape[1:]), dtype=np.float64)
    np.add.at(real, lo, (1 - share) * weights)
    np.add.at(real, hi, share * weights)
    touched = np.unique(np.concatenate([lo, hi[share.ravel() > 0]]))
    return touched, real[touched].astype(np.float32)


def frame_attention(
    attention: PatchAttention,
    query_grid: tuple[int, int],
    queries: Queries | None = None,
    layer: int | None = None,
    head: int | None = None,
    sample: int = 0,
    side_timestamps: torch.Tensor | np.ndarray | None = None,
) -> np.ndarray:
    """(T, T_s') attention of every key frame over all side frames (zero outside its window),
    side tokens of a frame summed. Shows the temporal alignment at a glance: a band along the
    diagonal. With ``side_timestamps`` of a side channel shorter than T, columns are its T_s real
    frames (see :func:`to_real_frames`); otherwise the side frames the patch read."""
    num_frames = attention.window.frames.shape[1]
    rows = [
        window_attention(attention, t, query_grid, queries, layer, head, side_timestamps=side_timestamps, sample=sample)
        for t in range(num_frames)
    ]
    width = max(int(row.frames.max()) for row in rows) + 1
    matrix = np.zeros((num_frames, width), dtype=np.float32)
    for t, row in enumerate(rows):
        matrix[t, row.frames] = row.weights.sum(axis=(1, 2))
    return matrix


def slot_times(frames: np.ndarray, side_timestamps, num_key_frames: int) -> np.ndarray:
    """Seconds of side frames given by their index in the patch's side sequence.

    A side channel with fewer frames than key frames is interpolated in time to T frames
    before windows are cut (:func:`pave.patch.alignment.interpolate_side`), so its index j sits
    at source position ``j * (T_s - 1) / (T - 1)``; otherwise indices are the side frames.
    """
    times = np.asarray(side_timestamps, dtype=np.float64)
    positions = np.asarray(frames, dtype=np.float64)
    if len(times) < num_key_frames:
        positions = positions * (len(times) - 1) / max(num_key_frames - 1, 1)
    return np.interp(positions, np.arange(len(times)), times)


def save_heatmap(
    path: str | Path,
    window: WindowAttention,
    key_image: np.ndarray | None = None,
    side_images: Sequence[np.ndarray] | None = None,
    matrix: np.ndarray | None = None,
    size: tuple[int, int] = (1200, 480),
    title: str | None = None,
    max_side_frames: int = 6,
) -> Path:
    """Draw a :class:`WindowAttention` and save it as a PNG of exactly ``size`` (width, height) pixels.

    Panels, left to right: the key frame (``key_image`` (H, W, 3) uint8, if given) with the
    query tokens outlined; then, for a spatial side channel, one heatmap per side frame of the
    window (at most ``max_side_frames``, the most attended ones), over ``side_images`` (one
    (H, W, 3) uint8 image per window frame) when given; for a temporal side channel, the
    weights along time, and ``matrix`` (from :func:`frame_attention`) when given.
    """
    figure_cls = _figure_class()
    dpi = 100
    fig = figure_cls(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    if window.temporal:
        panels = 1 + (key_image is not None) + (matrix is not None)
    else:
        shown = _most_attended(window, max_side_frames)
        panels = len(shown) + (key_image is not None)
    rest = list(fig.subplots(1, panels, squeeze=False)[0])
    if key_image is not None:
        _draw_key_frame(rest.pop(0), key_image, window)
    if window.temporal:
        _draw_along_time(rest.pop(0), window)
        if matrix is not None:
            _draw_matrix(fig, rest.pop(0), matrix, window.key_frame)
    else:
        vmax = float(window.weights.max()) or 1.0
        for ax, slot in zip(rest, shown, strict=True):
            image = None if side_images is None else side_images[slot]
            _draw_side_frame(fig, ax, window, slot, image, vmax)
    title = title or f"patch cross-attention of key frame {window.key_frame}"
    if window.interpolated:
        real, stretched = window.interpolated
        title += f"\n(side channel of {real} frames interpolated to {stretched}; weights shown on its real frames)"
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _flat_queries(queries: Queries | None, grid: tuple[int, int]) -> np.ndarray:
    h, w = grid
    if queries is None:
        return np.arange(h * w)
    flat = np.array([q[0] * w + q[1] if isinstance(q, (tuple, list)) else q for q in queries], dtype=np.int64)
    if len(flat) == 0 or flat.min() < 0 or flat.max() >= h * w:
        raise ValueError(f"query tokens must lie in the {h}x{w} grid, got {list(queries)}")
    return flat


def _most_attended(window: WindowAttention, limit: int) -> list[int]:
    """Window slots to draw, in time order: all of them, or the ``limit`` most attended."""
    mass = window.weights.sum(axis=(1, 2))
    return sorted(np.argsort(-mass, kind="stable")[:limit].tolist())


def _frame_label(window: WindowAttention, slot: int) -> str:
    label = f"side frame {window.frames[slot]}"
    return label if window.timestamps is None else f"{label}\nt = {window.timestamps[slot]:.2f} s"


def _draw_key_frame(ax, image: np.ndarray, window: WindowAttention) -> None:
    from matplotlib.patches import Rectangle

    height, width = image.shape[:2]
    h, w = window.query_grid
    ax.imshow(image)
    if len(window.queries) == h * w:
        ax.set_title(f"key frame {window.key_frame}: all {h}x{w} query tokens", fontsize=10)
    else:
        for q in window.queries:
            row, col = divmod(int(q), w)
            cell = Rectangle(
                (col * width / w, row * height / h), width / w, height / h, fill=False, ec="red", lw=1.5
            )
            ax.add_patch(cell)
        ax.set_title(f"key frame {window.key_frame}: query tokens in red", fontsize=10)
    ax.axis("off")


def _draw_side_frame(fig, ax, window: WindowAttention, slot: int, image, vmax: float) -> None:
    heat = window.weights[slot]
    if image is None:
        shown = ax.imshow(heat, cmap="inferno", vmin=0, vmax=vmax)
    else:
        height, width = image.shape[:2]
        ax.imshow(image)
        # Each side token covers its cell of the image: stretch the grid over the whole frame.
        shown = ax.imshow(heat, cmap="inferno", vmin=0, vmax=vmax, alpha=0.55, extent=(0, width, height, 0))
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(_frame_label(window, slot), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_along_time(ax, window: WindowAttention) -> None:
    weights = window.weights.reshape(len(window.frames))
    x = window.frames if window.timestamps is None else window.timestamps
    step = float(np.min(np.diff(x))) if len(x) > 1 else 1.0
    ax.bar(x, weights, width=0.8 * step, color="tab:red")
    ax.set_xlabel("side frame" if window.timestamps is None else "time (s)")
    ax.set_ylabel("attention")
    ax.set_ylim(0, max(1e-6, float(weights.max())) * 1.1)
    ax.set_title(f"window of key frame {window.key_frame}")


def _draw_matrix(fig, ax, matrix: np.ndarray, key_frame: int) -> None:
    shown = ax.imshow(matrix, aspect="auto", cmap="inferno", interpolation="nearest")
    ax.axhline(key_frame, color="cyan", lw=0.8, ls="--")
    ax.set_xlabel("side frame")
    ax.set_ylabel("key frame")
    ax.set_title("all key frames")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)


def _figure_class():
    # A bare Figure renders with Agg and touches no pyplot state: no display is needed, the
    # caller's backend is left alone, and concurrent requests of the demo do not interfere.
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "heatmaps need matplotlib, which is not installed: pip install 'pave-patches[viz]'"
        ) from None
    return Figure


__all__ = ["WindowAttention", "window_attention", "frame_attention", "slot_times", "save_heatmap"]
