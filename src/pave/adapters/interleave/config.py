"""`InterleaveConfig`: side tokens as extra LLM tokens (the paper's FT (interleave) baseline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pave.adapters.base import AdapterConfig


@dataclass
class InterleaveConfig(AdapterConfig):
    """Configuration of an :class:`~pave.adapters.interleave.InterleaveAdapter`.

    Args:
        side_dim: channels C_s of the side tokens.
        output_dim: the LLM hidden size C_v (the projector's output and inner width, as in
            LLaVA's two-layer projector).
        side_frames: T'_s, side frames every sample is resampled to in time. A fixed count keeps
            the number of LLM tokens, and so the processor's placeholders, the same for every
            sample whatever its side length; set it to the usual side length of the data so
            that little is resampled (training takes the first sample's length by default).
        side_grid: (s_h, s_w) of the side tokens; each side frame gives s_h * s_w LLM tokens.
    """

    side_dim: int = 1024
    output_dim: int = 896
    side_frames: int = 32
    side_grid: tuple[int, int] = field(default=(1, 1))

    def __post_init__(self) -> None:
        self.side_grid = tuple(int(v) for v in self.side_grid)
        if len(self.side_grid) != 2 or min(self.side_grid) <= 0:
            raise ValueError(f"InterleaveConfig.side_grid must be two positive integers, got {self.side_grid!r}")
        if self.side_frames <= 0:
            raise ValueError(f"InterleaveConfig.side_frames must be positive, got {self.side_frames}")

    @property
    def num_tokens(self) -> int:
        """Extra LLM tokens per video: T'_s * s_h * s_w."""
        return self.side_frames * self.side_grid[0] * self.side_grid[1]

    def base_requirements(self) -> dict[str, Any]:
        return {"output_dim (LLM hidden size)": self.output_dim}
