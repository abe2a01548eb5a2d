"""The two inputs a patched model reads besides text, as the data layer builds them and the
patches consume them: the base's visual tokens and the side channels' tokens of a batch.

Both move as one value (``.to(device)``), which is how accelerate's data loaders and the
evaluation runner place them; visual tokens also index along the batch dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


def _moved(value, device, dtype, non_blocking: bool, cast: tuple[str, ...]):
    """A copy of the dataclass ``value`` with every tensor on ``device``, and the fields in
    ``cast`` also in ``dtype`` (masks and timestamps keep theirs)."""
    moved = {}
    for f in fields(value):
        tensor = getattr(value, f.name)
        wanted = dtype if f.name in cast else None
        moved[f.name] = None if tensor is None else tensor.to(device, wanted, non_blocking=non_blocking)
    return type(value)(**moved)


@dataclass
class VisualTokens:
    """The base model's visual tokens for a batch of videos, as a patch sees them.

    Attributes:
        tokens: (B, T, h, w, C_v) projected and pooled visual tokens.
        query_features: (B, T, h, w, C_q) vision-tower features before the projector, pooled to
            the same grid (the default source of a patch's queries).
        frame_times: optional (B, T) timestamps in seconds of the grid's frames.
        frame_extra: optional (B, T, n, C_v) tokens of each frame outside the grid, which patches
            leave alone (Video-LLaVA's CLS token); None for most bases.
    """

    tokens: torch.Tensor
    query_features: torch.Tensor
    frame_times: torch.Tensor | None = None
    frame_extra: torch.Tensor | None = None

    def to(self, device=None, dtype=None, non_blocking: bool = False) -> VisualTokens:
        """On ``device``; ``dtype`` casts the tokens and features (timestamps stay float32)."""
        return _moved(self, device, dtype, non_blocking, cast=("tokens", "query_features", "frame_extra"))

    def __getitem__(self, index) -> VisualTokens:
        """Select samples (a slice or an index tensor) along the batch dimension."""
        return VisualTokens(*(None if t is None else t[index] for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor | None, ...]:
        """The fields in order (None where unset)."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def cat(cls, batches: list[VisualTokens]) -> VisualTokens:
        """Batches concatenated along the batch dimension."""
        fields = zip(*(b.tensors() for b in batches), strict=True)
        return cls(*(None if parts[0] is None else torch.cat(parts) for parts in fields))


@dataclass
class SideInputs:
    """One side channel for a batch.

    Attributes:
        tokens: (B, T_s, s_h, s_w, C_s), right-padded along T_s.
        mask: (B, T_s) True for real side frames; None when no sample is padded.
        timestamps: (B, T_s) side-frame timestamps in seconds (for time alignment), the
            ``SideChannel.timestamps`` of each sample, padded with its last one.
    """

    tokens: torch.Tensor
    mask: torch.Tensor | None = None
    timestamps: torch.Tensor | None = None

    def to(self, device=None, dtype=None, non_blocking: bool = False) -> SideInputs:
        """On ``device``; ``dtype`` casts the tokens (mask and timestamps keep theirs)."""
        return _moved(self, device, dtype, non_blocking, cast=("tokens",))
