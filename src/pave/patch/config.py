"""`PatchConfig`: every setting of a PAVE patch, saved as ``patch_config.json`` beside its weights."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

QUERY_SOURCES = ("vision", "projected", "learnable")
ROPE_MODES = ("3d", "temporal", "none")
ALIGNMENTS = ("chunk", "time")


@dataclass
class PatchConfig:
    """Configuration of a :class:`~pave.patch.PavePatch`.

    Defaults are the paper's (Appendix B.1-B.2): 2 cross-attention layers of width 512 with 4
    heads, 1024-d side tokens, queries from the 1152-d SigLIP features before the projector.

    Args:
        side_dim: channels C_s of the side-channel tokens.
        query_dim: channels C_q of the query features. For ``query_source="vision"`` the vision
            tower's width (1152 for SigLIP so400m); for ``"projected"`` the LLM width.
        output_dim: channels C_v of the visual tokens the patch updates (the LLM hidden size).
        hidden_dim: width d of the cross-attention layers.
        num_layers: number of cross-attention + feed-forward layers L.
        num_heads: attention heads; ``hidden_dim / num_heads`` must be even (rotary pairs).
        ffn_dim: inner width of each layer's bias-free feed-forward.
        output_mlp_dim: inner width of the output MLP d -> C_v.
        query_source: ``"vision"`` (vision-tower features pooled to the visual-token grid),
            ``"projected"`` (the visual tokens themselves) or ``"learnable"`` (one learned query
            per grid cell, shared by all frames: the paper's ablation).
        query_grid: (h, w) of the visual-token grid; required for learnable queries.
        rope: rotary embedding on queries and keys: ``"3d"`` (time, height, width) for side
            tokens with a spatial grid, ``"temporal"`` for purely temporal ones such as audio,
            ``"none"`` to disable it.
        rope_theta: rotary base.
        alignment: ``"chunk"`` splits the side frames into T contiguous chunks in order (the
            authors' rule); ``"time"`` assigns each side frame to the key frame nearest in time,
            which needs frame and side timestamps.
        time_window: with ``alignment="time"``, if set, key frame i instead attends to every
            side frame within ``time_window / 2`` seconds of it (windows may overlap).
        value_from_key: project values with the key projection, as the authors' released
            checkpoints do; only for converted checkpoints.
        dropout: attention and feed-forward dropout.
        recompute: in training, keep only each layer's input for the backward pass and recompute
            the layer (activation checkpointing of the cross-attention layers and the output
            MLP): far less memory for about one more forward pass of time; outputs are the same.
        layer_norm_eps: epsilon of every LayerNorm.
        side_channel: name of the side channel the patch was trained on (``"audio"``, ...).
        side_grid: (s_h, s_w) of the side tokens it was trained on, for validation.
        side_encoder: name of the side-channel encoder that produced its training features.
        base_model: id or path of the base model it was trained on.
        visual_grid: (h, w) of the visual-token grid it was trained on.
        pave_version: version of ``pave`` that wrote the config.
    """

    side_dim: int = 1024
    query_dim: int = 1152
    output_dim: int = 896
    hidden_dim: int = 512
    num_layers: int = 2
    num_heads: int = 4
    ffn_dim: int = 1024
    output_mlp_dim: int = 1024
    query_source: str = "vision"
    query_grid: tuple[int, int] | None = None
    rope: str = "3d"
    rope_theta: float = 10000.0
    alignment: str = "chunk"
    time_window: float | None = None
    value_from_key: bool = False
    dropout: float = 0.0
    recompute: bool = False
    layer_norm_eps: float = 1e-5
    side_channel: str | None = None
    side_grid: tuple[int, int] | None = None
    side_encoder: str | None = None
    base_model: str | None = None
    visual_grid: tuple[int, int] | None = None
    pave_version: str = field(default_factory=lambda: installed_version())

    def __post_init__(self) -> None:
        for name in ("query_grid", "side_grid", "visual_grid"):
            value = getattr(self, name)
            if value is not None:
                if len(value) != 2 or any(int(v) <= 0 for v in value):
                    raise ValueError(f"PatchConfig.{name} must be two positive integers (h, w), got {value!r}")
                setattr(self, name, (int(value[0]), int(value[1])))
        for name, choices in (
            ("query_source", QUERY_SOURCES),
            ("rope", ROPE_MODES),
            ("alignment", ALIGNMENTS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"PatchConfig.{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"PatchConfig.hidden_dim ({self.hidden_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.rope != "none" and self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {self.head_dim}")
        if self.rope == "3d" and self.head_dim < 6:
            raise ValueError(f"3D rotary embeddings need a head dimension of at least 6, got {self.head_dim}")
        if self.query_source == "learnable" and self.query_grid is None:
            raise ValueError("PatchConfig.query_grid (h, w) is required when query_source='learnable'")
        if self.time_window is not None and (self.alignment != "time" or self.time_window <= 0):
            raise ValueError("PatchConfig.time_window must be positive and needs alignment='time'")

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def uses_side(self) -> bool:
        """A PAVE patch always reads a side channel (adapter configs answer the same question)."""
        return True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "PatchConfig") -> PatchConfig:
        """Build a config from a dict, refusing unknown keys (``source`` names where it came from)."""
        return config_from_dict(cls, data, source)


def config_from_dict(cls, data: dict[str, Any], source: str):
    """``cls(**data)`` for a config dataclass, refusing unknown keys and values of the wrong JSON
    type with a message that starts with ``source`` (the file or section they came from)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    check_types(cls, data, source)
    return cls(**data)


def rope_for_grid(side_grid: tuple[int, int]) -> str:
    """The rotary mode for side tokens on an (s_h, s_w) grid: temporal without a spatial grid
    (audio), 3D otherwise."""
    return "temporal" if tuple(side_grid) == (1, 1) else "3d"


def installed_version() -> str:
    """The installed ``pave`` version (imported late: configs load while ``pave`` initialises)."""
    from pave import __version__

    return __version__


_SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def check_types(cls, data: dict[str, Any], source: str) -> None:
    """Refuse a value of the wrong JSON type for a config field typed int, float, str or bool
    (optionally None): ``num_heads: "4"`` names the file and field instead of failing later."""
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        hint = hints[name]
        # A union (``int | None``) allows each of its members; a container (``tuple[int, int]``) is
        # left to the config's own checks.
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        allowed = typing.get_args(hint) if union else (hint,)
        scalars = [t for t in allowed if t in _SCALARS]
        if not scalars or (value is None and type(None) in allowed):
            continue
        if not any(_is_json_type(value, t) for t in scalars):
            expected = " or ".join(_SCALARS[t] for t in scalars) + (" or null" if type(None) in allowed else "")
            raise ValueError(f"{source}: field {name!r} must be {expected}, got {value!r}")


def _is_json_type(value: Any, kind: type) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, never to a config
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))
