"""The side-channel value type, the encoder interface and the back-end registry.

Shapes: T_s side frames, each an (s_h, s_w) grid of C-dim tokens; s_h = s_w = 1 for purely
temporal signals such as audio. A batch of these is what :class:`pave.patch.PavePatch` consumes
as side tokens (B, T_s, s_h, s_w, C) with timestamps (B, T_s).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from pave.names import SIDE_CHANNEL_KINDS

# Side-channel kinds, named as on the command line.
KINDS = SIDE_CHANNEL_KINDS


@dataclass
class SideChannel:
    """Side tokens of one item.

    tokens: (T_s, s_h, s_w, C) float32. timestamps: (T_s,) float32 seconds on the clock of the
    item's video (or scan). kind: one of :data:`KINDS`. encoder: the encoder's name, e.g.
    ``"builtin-logmel"``.
    """

    tokens: torch.Tensor
    timestamps: torch.Tensor
    kind: str
    encoder: str

    def __post_init__(self):
        if self.tokens.dim() != 4:
            raise ValueError(f"tokens must be (T_s, s_h, s_w, C), got shape {tuple(self.tokens.shape)}")
        if self.tokens.numel() == 0:
            raise ValueError(f"tokens are empty (shape {tuple(self.tokens.shape)}): no side frame to attend to")
        if self.timestamps.shape != self.tokens.shape[:1]:
            raise ValueError(
                f"timestamps must be ({self.tokens.shape[0]},) to match tokens, got {tuple(self.timestamps.shape)}"
            )
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        # One NaN item once made training save an all-NaN patch: refuse it where it enters.
        if not (torch.isfinite(self.tokens).all() and torch.isfinite(self.timestamps).all()):
            raise ValueError("tokens or timestamps hold NaN or Inf values")

    @property
    def grid(self) -> tuple[int, int]:
        """(s_h, s_w), the token grid of each side frame."""
        return tuple(self.tokens.shape[1:3])

    @property
    def dim(self) -> int:
        return self.tokens.shape[-1]


class SideChannelEncoder(ABC):
    """Turns one item (a media file, a scan folder, or a list of view videos) into a
    :class:`SideChannel`. Encoders are frozen and deterministic; ``encode`` may be called from
    several threads at once."""

    kind: str
    name: str

    @property
    @abstractmethod
    def dim(self) -> int:
        """C, the width of each token."""

    @abstractmethod
    def encode(self, item: str | Path | list[str | Path]) -> SideChannel:
        """Encode one item. Raises :class:`pave.data.media.MediaError` on unreadable media."""


_REGISTRY: dict[tuple[str, str], Callable[..., SideChannelEncoder]] = {}


def register(kind: str, backend: str):
    """Class or factory decorator: make ``get_encoder(kind, backend, **options)`` build it."""

    def wrap(factory):
        _REGISTRY[(kind, backend)] = factory
        return factory

    return wrap


def backends(kind: str) -> list[str]:
    """The back-ends registered for ``kind``."""
    _load_modules()
    return sorted(b for k, b in _REGISTRY if k == kind)


def get_encoder(kind: str, backend: str = "builtin", **options) -> SideChannelEncoder:
    """Build the encoder of ``kind`` with ``backend``; ``options`` go to its constructor
    (e.g. ``model="llava-hf/llava-onevision-qwen2-0.5b-ov-hf"``)."""
    _load_modules()
    if (kind, backend) not in _REGISTRY:
        raise ValueError(f"no {backend!r} encoder for side channel {kind!r}; available: {backends(kind)}")
    factory = _REGISTRY[(kind, backend)]
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise ValueError(f"the {backend!r} {kind} encoder takes no option {unknown}; it takes {sorted(params)}")
    return factory(**options)


def _load_modules() -> None:
    # Modules register their encoders on import; importing them here keeps `import pave` light.
    from pave.sidechannels import audio, dense_video, multiview, released, scene3d  # noqa: F401
