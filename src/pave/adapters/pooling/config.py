"""`PoolingConfig`: PLLaVA's adaptive average pooling of the visual tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

from pave.adapters.base import AdapterConfig


@dataclass
class PoolingConfig(AdapterConfig):
    """Configuration of a :class:`~pave.adapters.pooling.PoolingAdapter`.

    Args:
        grid: (h', w') visual tokens per frame after pooling. PLLaVA halves each side (24 x 24
            -> 12 x 12), its sweep's best trade-off; for LLaVA-OneVision's 14 x 14 that is 7 x 7.
        frames: T' frames after pooling; None keeps the key frames (PLLaVA found that temporal
            pooling always hurts).
    """

    grid: tuple[int, int] = field(default=(7, 7))
    frames: int | None = None

    def __post_init__(self) -> None:
        self.grid = tuple(int(v) for v in self.grid)
        if len(self.grid) != 2 or min(self.grid) <= 0:
            raise ValueError(f"PoolingConfig.grid must be two positive integers (h', w'), got {self.grid!r}")
        if self.frames is not None and self.frames <= 0:
            raise ValueError(f"PoolingConfig.frames must be positive or null, got {self.frames}")

    @property
    def uses_side(self) -> bool:
        return False
