"""What every adapter shares: its config base class, its module interface and the token layout it
changes. Each adapter folder registers its kind and method in :mod:`pave.methods`.

A PAVE patch adds a delta to the visual tokens and leaves their number alone. The adapters here
are the alternatives the paper and the related systems use, and most of them change *which*
tokens a video becomes in the LLM input. Legend: B samples, T key frames, (h, w) visual-token
grid, C_v LLM width, C_q vision-feature width, T_s side frames, (s_h, s_w) side-token grid, C_s
side-token width, N_x extra tokens.

The LLM input of one video is always laid out as::

    [T' x (frame_extra + h' x w') grid tokens] [newline] [N_x extra tokens]

where a pooling adapter shrinks the grid and interleave / Q-Former adapters append extra tokens
(``frame_extra``: tokens a base puts before each frame's grid, such as Video-LLaVA's CLS token).
The processor must expand the ``<video>`` placeholder to exactly that many tokens, which
:class:`TokenLayout` computes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pave.patch.config import config_from_dict, installed_version

#: Where LLaVA-OneVision's newline token may go in a video (its ``mm_newline_position``).
NEWLINE_POSITIONS = ("one_token", "grid", "frame", "no_token")


@dataclass(frozen=True)
class TokenLayout:
    """How many LLM input tokens one video becomes.

    Attributes:
        grid: (h, w) visual tokens per frame.
        frames: frames of the grid; None: the video's key frames T over ``frame_stride``.
        extra: tokens appended after the video's newline token(s).
        frame_extra: tokens of each frame outside its grid, before it (Video-LLaVA: its CLS token).
        frame_stride: key frames per grid frame (Qwen2.5-VL merges 2 frames into one).
        newline: where the base's newline token goes (LLaVA-OneVision's ``mm_newline_position``):
            ``"one_token"`` once after the video (transformers), ``"grid"`` after every row of
            every frame (the authors' training and evaluation), ``"frame"`` after every frame,
            ``"no_token"`` nowhere.
    """

    grid: tuple[int, int]
    frames: int | None = None
    extra: int = 0
    newline: str = "one_token"
    frame_extra: int = 0
    frame_stride: int = 1

    def __post_init__(self) -> None:
        if self.newline not in NEWLINE_POSITIONS:
            raise ValueError(f"newline position must be one of {NEWLINE_POSITIONS}, got {self.newline!r}")

    def grid_frames(self, frames: int) -> int:
        """T': the grid's frames for a video of ``frames`` key frames."""
        if self.frames is not None:
            return self.frames
        if frames % self.frame_stride:
            raise ValueError(f"this base merges {self.frame_stride} key frames into one; {frames} is not a multiple")
        return frames // self.frame_stride

    def key_frames(self, grid_frames: int) -> int:
        """Key frames behind ``grid_frames`` frames of an unpooled grid (cached visual tokens);
        ``key_frames(t)`` is also the first key frame of grid frame ``t``."""
        return grid_frames * self.frame_stride

    def grid_tokens(self, frames: int) -> int:
        """T' * h' * w' for a video of ``frames`` key frames."""
        return self.grid_frames(frames) * self.grid[0] * self.grid[1]

    def newline_tokens(self, frames: int) -> int:
        """Newline tokens of a video of ``frames`` key frames."""
        frames = self.grid_frames(frames)
        return {"one_token": 1, "grid": frames * self.grid[0], "frame": frames, "no_token": 0}[self.newline]

    def num_tokens(self, frames: int) -> int:
        """Placeholder tokens of a video of ``frames`` key frames: grid (with each frame's own
        extra tokens), newlines, extra."""
        return (
            self.grid_tokens(frames)
            + self.grid_frames(frames) * self.frame_extra
            + self.newline_tokens(frames)
            + self.extra
        )


@dataclass
class AdapterOutput:
    """tokens: (B, T', h', w', C_v), the grid the LLM sees; extra: (B, N_x, C_v) or None."""

    tokens: torch.Tensor
    extra: torch.Tensor | None = None


@dataclass
class AdapterConfig:
    """Fields every adapter config has; subclasses add their own and are saved as JSON.

    Args:
        side_channel: name of the side channel the adapter reads (None: its own name).
        side_encoder: the encoder that produced its training features (as
            :attr:`pave.patch.PatchConfig.side_encoder`), so inference encodes media the same way.
        base_model: id or path of the base model it was trained on.
        pave_version: version of ``pave`` that wrote the config.
    """

    side_channel: str | None = None
    side_encoder: str | None = None
    base_model: str | None = None
    pave_version: str = dataclasses.field(default_factory=lambda: installed_version())

    @property
    def uses_side(self) -> bool:
        """Whether the adapter reads a side channel."""
        return True

    def base_requirements(self) -> dict[str, Any]:
        """Facts about the base the adapter was built for, by label (checked on loading)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> AdapterConfig:
        """Build a config from a dict, refusing unknown keys (``source`` names where it came from)."""
        return config_from_dict(cls, data, source or cls.__name__)


class TokenAdapter(nn.Module):
    """Interface of an adapter: visual tokens (and side tokens) in, the video's LLM tokens out.

    Subclasses set ``config`` and implement :meth:`forward` and :meth:`layout`.
    """

    config: AdapterConfig

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        query_features: torch.Tensor | None = None,
        side: torch.Tensor | None = None,
        side_mask: torch.Tensor | None = None,
    ) -> AdapterOutput:
        """Args: tokens (B, T, h, w, C_v); query_features (B, T, h, w, C_q) vision features
        before the projector; side (B, T_s, s_h, s_w, C_s) right-padded; side_mask (B, T_s)."""
        raise NotImplementedError

    def layout(self, layout: TokenLayout) -> TokenLayout:
        """The token layout after this adapter, given the one before it."""
        raise NotImplementedError
