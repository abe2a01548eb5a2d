"""FLOPs and parameter accounting, counted the way the paper counts them (Appendix B.5).

Every table the project prints (``pave flops``, the quickstart's table, ``pave eval``'s report)
goes through :func:`account`, so FLOPs and parameters are always computed one way:

- **LLM prefill FLOPs** (:func:`llm_prefill_flops`): the LLM-Viewer formula the paper used, over
  the visual tokens of one video (32 frames x 196 for LLaVA-OneVision) plus 40 text tokens.
- **Patch FLOPs** (:func:`patch_flops`): every matrix product of :class:`~pave.patch.PavePatch`
  as built, at the paper's side-channel shapes, plus its norms, softmax, activations and
  residual adds under the same convention as the LLM.
- **Parameters**: the base model built from its config on the meta device (no weights) and
  counted; trainable = LoRA (r x (in + out) per targeted Linear of the LLM) plus the patch, built
  on the meta device and counted.

Methods: ``base`` (the frozen model), ``ft`` (LoRA only), ``pave`` (LoRA + patch),
``pave-learnable`` (LoRA + patch with learnable queries), ``interleave`` (LoRA + a two-layer MLP
projecting side tokens to the LLM width; the side tokens become extra LLM tokens).

>>> from pave.flops import account
>>> acc = account("llava-onevision-0.5b", "pave", "3d")
>>> round(acc.tflops_llm, 2), acc.params_trainable
(8.01, 41428608)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pave.configs import bundled_config
from pave.models import llava_onevision as family
from pave.names import BUNDLED_BASES, FLOPS_DURATION, FLOPS_METHODS, FLOPS_TEXT_TOKENS, SIDE_CHANNEL_KINDS
from pave.patch import PatchConfig, PavePatch
from pave.patch.config import rope_for_grid

BASES = BUNDLED_BASES
METHODS = FLOPS_METHODS
SIDE_CHANNELS = ("none", *SIDE_CHANNEL_KINDS)
# The LLM's Linear layers that LoRA adapts (paper App. B.2: r = 64 on all of them).
LORA_TARGETS = family.LORA_ATTENTION + family.LORA_MLP
LORA_RANK = 64
TEXT_TOKENS = FLOPS_TEXT_TOKENS  # the paper's prompt length
DURATION = FLOPS_DURATION  # seconds: the paper's assumed video length for audio and dense video


@dataclass(frozen=True)
class VisualLayout:
    """The visual tokens a base model sends to its LLM for one video.

    Attributes:
        frames: T, key frames.
        grid: (h, w) visual tokens per frame, the grid the patch updates.
        feature_dim: width of the vision features before the projector (the patch's queries).
        extra_per_frame: tokens per frame outside the grid (Video-LLaVA's CLS token).
    """

    frames: int
    grid: tuple[int, int]
    feature_dim: int
    extra_per_frame: int = 0

    @property
    def grid_tokens(self) -> int:
        """T * h * w: the tokens the patch updates (its queries)."""
        return self.frames * self.grid[0] * self.grid[1]

    @property
    def llm_tokens(self) -> int:
        return self.frames * (self.grid[0] * self.grid[1] + self.extra_per_frame)


@dataclass(frozen=True)
class SideLayout:
    """Side-channel tokens of one sample: ``frames`` (T_s) of ``grid`` (s_h, s_w) tokens, ``dim`` wide."""

    frames: int
    grid: tuple[int, int]
    dim: int

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.frames * self.tokens_per_frame


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a model: all of them, and those that train."""

    total: int
    trainable: int


@dataclass(frozen=True)
class Accounting:
    """Prefill FLOPs and parameters of one base model + method + side channel.

    Attributes:
        base: the base model's name, path or id.
        method: one of :data:`METHODS`.
        side_channel: one of :data:`SIDE_CHANNELS`, or ``"custom"`` for a :class:`SideLayout`.
        llm_tokens: tokens the LLM prefills (visual + text, + side tokens when interleaved).
        flops_llm: prefill FLOPs of the LLM.
        flops_patch: FLOPs of the patch (or of the interleave projector).
        params_total: parameters of the base model plus the trainable additions.
        params_trainable: LoRA plus patch (or projector) parameters; 0 for ``base``.
    """

    base: str
    method: str
    side_channel: str
    llm_tokens: int
    flops_llm: int
    flops_patch: int
    params_total: int
    params_trainable: int

    @property
    def flops_total(self) -> int:
        return self.flops_llm + self.flops_patch

    @property
    def tflops_llm(self) -> float:
        return self.flops_llm / 1e12

    @property
    def tflops_patch(self) -> float:
        return self.flops_patch / 1e12

    @property
    def tflops_total(self) -> float:
        return self.flops_total / 1e12

    def with_parameters(self, count: ParameterCount) -> Accounting:
        """The same FLOPs with the parameters of a live model (see :func:`parameter_count`)."""
        return dataclasses.replace(self, params_total=count.total, params_trainable=count.trainable)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(
            flops_total=self.flops_total,
            tflops_llm=self.tflops_llm,
            tflops_patch=self.tflops_patch,
            tflops_total=self.tflops_total,
        )
        return data


def load_base_config(base: str | os.PathLike | Any):
    """The transformers config of a base model.

    Args:
        base: a bundled name (:data:`BASES`), a ``config.json`` file, a model directory, a model
            id already in the local Hugging Face cache, or a transformers config (returned as is).
    """
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(base, PretrainedConfig):
        return base
    if str(base) in BASES:
        return AutoConfig.for_model(**bundled_config(f"{base}.json"))
    path = Path(base)
    if path.is_file():
        return AutoConfig.for_model(**json.loads(path.read_text()))
    try:
        return AutoConfig.from_pretrained(str(base), local_files_only=True)
    except (OSError, ValueError):
        raise ValueError(
            f"{base!r} is neither a bundled base model {BASES}, a config file, a model directory, "
            "nor a model id in the local Hugging Face cache"
        ) from None


def visual_layout(config, frames: int | None = None) -> VisualLayout:
    """The visual-token layout of a base model (LLaVA-OneVision or Video-LLaVA) for one video.

    LLaVA-OneVision: 32 frames of SigLIP's 27 x 27 patches pooled to 14 x 14 (see
    :mod:`pave.models.llava_onevision`); its one ``image_newline`` token per video is left out, as
    in the paper's 6272. Video-LLaVA: 8 frames of 16 x 16 CLIP patches, unpooled, each with its
    CLS token.
    """
    if config.model_type == "llava_onevision":
        from pave.models import llava_onevision

        grid, feature_dim = llava_onevision.visual_grid(config), llava_onevision.query_dim(config, "vision")
        return VisualLayout(frames=frames or 32, grid=grid, feature_dim=feature_dim)
    if config.model_type == "video_llava":
        vision = config.vision_config
        side = vision.image_size // vision.patch_size
        return VisualLayout(
            frames=frames or 8, grid=(side, side), feature_dim=vision.hidden_size, extra_per_frame=1
        )
    raise ValueError(
        f"no visual-token layout known for model type {config.model_type!r}; supported: llava_onevision, video_llava"
    )


def side_layout(name: str, frames: int = 32, duration: float = DURATION) -> SideLayout | None:
    """The side tokens of one sample as the paper sizes them (Appendix B.5); None for ``"none"``.

    Args:
        name: one of :data:`SIDE_CHANNELS`.
        frames: key frames of the base model; 3D and exo-view frames are sampled alike.
        duration: video length in seconds (audio and dense video).
    """
    if name == "none":
        return None
    if name == "audio":  # ImageBind: one 1024-d token per second of audio
        return SideLayout(frames=round(duration), grid=(1, 1), dim=1024)
    if name == "3d":  # LLaVA-3D encoder: 24 x 24 tokens per RGB-D frame, 1024-d
        return SideLayout(frames=frames, grid=(24, 24), dim=1024)
    if name == "video":  # LanguageBind at 2 fps, 16 x 16 pooled to 2 x 2, 1024-d
        return SideLayout(frames=round(2 * duration), grid=(2, 2), dim=1024)
    if name == "exo":  # 4 exo views through SigLIP, 14 x 14 per frame, stacked time-major
        return SideLayout(frames=4 * frames, grid=(14, 14), dim=1152)
    raise ValueError(f"unknown side channel {name!r}; choose from {SIDE_CHANNELS}")


def llm_prefill_flops(text_config, num_tokens: int) -> int:
    """Prefill FLOPs of a decoder-only LLM over ``num_tokens`` tokens: the LLM-Viewer formula.

    Per layer, 2 FLOPs per multiply-add of the q, k, v, o, gate, up and down projections (k and
    v at the grouped-query width); 2 n^2 h for Q K^T and 2 n^2 h for the value product over the
    full n x n square (not halved for causality); softmax 5 heads n^2; two RMSNorms 7 h n each;
    one residual add h n; activation 2 h n. Embeddings, lm_head, RoPE and biases are not counted.
    """
    n, h, heads = num_tokens, text_config.hidden_size, text_config.num_attention_heads
    q_width, kv_width = _attention_widths(text_config)
    projections = h * q_width + 2 * h * kv_width + q_width * h + 3 * h * text_config.intermediate_size
    per_layer = (
        2 * n * projections
        + 2 * (2 * n * n * q_width)  # Q K^T, then the value product
        + 5 * heads * n * n  # softmax
        + 2 * 7 * h * n  # two RMSNorms
        + h * n  # residual add
        + 2 * h * n  # activation
    )
    return text_config.num_hidden_layers * per_layer


def _attention_widths(text_config) -> tuple[int, int]:
    """Output widths of the q projection and of each of k and v (grouped-query attention)."""
    heads = text_config.num_attention_heads
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // heads
    kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
    return heads * head_dim, kv_heads * head_dim


def patch_flops(
    config: PatchConfig, visual: VisualLayout, side: SideLayout, matmul_only: bool = False
) -> int:
    """FLOPs of one :class:`~pave.patch.PavePatch` forward pass for one sample, as built.

    Matrix products count 2 FLOPs per multiply-add (biases not counted), as
    ``torch.utils.flop_counter.FlopCounterMode`` counts them. The rest follows the LLM's
    convention: softmax 5 per score, LayerNorm 7 per element, GELU 2, residual add 1; RoPE is
    not counted. Side signals shorter than T frames are interpolated to T frames first; every key
    frame's window is padded to the longest one, and the padded keys are computed too. Windows
    are those of ``alignment="chunk"``; timestamp windows can be wider or narrower.
    """
    d, heads = config.hidden_dim, config.num_heads
    queries = visual.grid_tokens
    side_frames = max(side.frames, visual.frames)  # after interpolation
    memory = side_frames * side.tokens_per_frame
    keys_per_query = math.ceil(side_frames / visual.frames) * side.tokens_per_frame

    matmul = 2 * side.num_tokens * side.dim * d  # input mapping, before interpolation
    if config.query_source != "learnable":
        matmul += 2 * queries * config.query_dim * d
    kv_projections = 1 if config.value_from_key else 2
    matmul += config.num_layers * (
        2 * queries * d * d  # q
        + kv_projections * 2 * memory * d * d  # k, v
        + 2 * (2 * queries * keys_per_query * d)  # Q K^T, then the value product
        + 2 * (2 * queries * d * config.ffn_dim)  # feed-forward
    )
    matmul += 2 * queries * (d * config.output_mlp_dim + config.output_mlp_dim * config.output_dim)
    if matmul_only:
        return matmul
    other = config.num_layers * (
        5 * heads * queries * keys_per_query  # softmax
        + 7 * d * queries  # feed-forward LayerNorm
        + 2 * config.ffn_dim * queries  # GELU
        + 2 * d * queries  # two residual adds
    )
    # Output MLP's GELU, output LayerNorm, and adding the delta to the visual tokens.
    other += (2 * config.output_mlp_dim + 7 * config.output_dim + config.output_dim) * queries
    return matmul + other


def patch_config_for(config, visual: VisualLayout, side: SideLayout, learnable: bool = False) -> PatchConfig:
    """The paper's patch for a base model and side channel (2 layers, width 512, 4 heads, ...).

    Queries come from the vision features (or are learned per grid cell); RoPE is temporal for
    side tokens without a spatial grid (audio), 3D otherwise.
    """
    return PatchConfig(
        side_dim=side.dim,
        query_dim=visual.feature_dim,
        output_dim=config.text_config.hidden_size,
        query_source="learnable" if learnable else "vision",
        query_grid=visual.grid if learnable else None,
        rope=rope_for_grid(side.grid),
        side_grid=side.grid,
        visual_grid=visual.grid,
    )


def lora_parameters(text_config, rank: int = LORA_RANK) -> int:
    """Parameters of LoRA of rank ``rank`` on every :data:`LORA_TARGETS` Linear: r (in + out) each."""
    h, inter = text_config.hidden_size, text_config.intermediate_size
    q_width, kv_width = _attention_widths(text_config)
    widths = [(h, q_width), (h, kv_width), (h, kv_width), (q_width, h), (h, inter), (h, inter), (inter, h)]
    return text_config.num_hidden_layers * sum(rank * (fan_in + fan_out) for fan_in, fan_out in widths)


def parameter_count(model: nn.Module) -> ParameterCount:
    """Total and trainable (``requires_grad``) parameters of a live model; tied weights count once."""
    params = list(model.parameters())
    return ParameterCount(
        total=sum(p.numel() for p in params), trainable=sum(p.numel() for p in params if p.requires_grad)
    )


def base_parameters(config) -> int:
    """Parameters of the base model, built from its config on the meta device (no weights)."""
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    return parameter_count(model).total


def account(
    base,
    method: str = "pave",
    side_channel: str | SideLayout = "none",
    *,
    frames: int | None = None,
    text_tokens: int = TEXT_TOKENS,
    duration: float = DURATION,
    patch_config: PatchConfig | None = None,
    lora_rank: int = LORA_RANK,
) -> Accounting:
    """Prefill FLOPs and parameters of ``base`` adapted by ``method`` with ``side_channel``.

    Args:
        base: anything :func:`load_base_config` takes.
        method: one of :data:`METHODS`.
        side_channel: one of :data:`SIDE_CHANNELS`, or explicit :class:`SideLayout`.
        frames: key frames; the base family's default (32 for LLaVA-OneVision) if None.
        text_tokens: text tokens of the prompt.
        duration: video length in seconds, for audio and dense-video side channels.
        patch_config: the patch to count instead of the paper's (``pave``/``pave-learnable``).
        lora_rank: rank of the LoRA on the LLM.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    config = load_base_config(base)
    visual = visual_layout(config, frames)
    if isinstance(side_channel, SideLayout):
        side, side_name = side_channel, "custom"
    else:
        side, side_name = side_layout(side_channel, visual.frames, duration), side_channel
    uses_side = method in ("pave", "pave-learnable", "interleave")
    if uses_side and side is None:
        raise ValueError(f"method {method!r} needs a side channel; choose from {SIDE_CHANNELS[1:]}")
    if not uses_side and side is not None:
        raise ValueError(f"method {method!r} uses no side channel, got {side_name!r}")
    if patch_config is not None and method not in ("pave", "pave-learnable"):
        raise ValueError(f"a patch_config applies to the pave methods, not to {method!r}")

    text = config.text_config
    llm_tokens = visual.llm_tokens + text_tokens
    flops_patch = added = 0
    if method in ("pave", "pave-learnable"):
        patch_config = patch_config or patch_config_for(
            config, visual, side, learnable=method == "pave-learnable"
        )
        flops_patch = patch_flops(patch_config, visual, side)
        with torch.device("meta"):
            added = parameter_count(PavePatch(patch_config)).total
    elif method == "interleave":
        llm_tokens += side.num_tokens
        flops_patch, added = _interleave_projector(side, text.hidden_size)
    trainable = 0 if method == "base" else lora_parameters(text, lora_rank) + added
    return Accounting(
        base=str(base) if isinstance(base, (str, os.PathLike)) else config.name_or_path or config.model_type,
        method=method,
        side_channel=side_name,
        llm_tokens=llm_tokens,
        flops_llm=llm_prefill_flops(text, llm_tokens),
        flops_patch=flops_patch,
        params_total=base_parameters(config) + trainable,
        params_trainable=trainable,
    )


def _interleave_projector(side: SideLayout, width: int) -> tuple[int, int]:
    """FLOPs and parameters of the interleave baseline's projector: Linear(C_s -> D), GELU,
    Linear(D -> D), the shape of LLaVA's multimodal projector, applied to every side token."""
    flops = side.num_tokens * (2 * (side.dim * width + width * width) + 2 * width)
    params = side.dim * width + width + width * width + width
    return flops, params


def format_table(rows: Iterable[tuple[str, Accounting]]) -> str:
    """A plain-text table, one row per (label, accounting), in the paper's units."""
    header = ("", "LLM tokens", "TFLOPs LLM", "TFLOPs patch", "TFLOPs total", "Total / Trainable params")
    lines = [header] + [
        (
            label,
            str(acc.llm_tokens),
            f"{acc.tflops_llm:.2f}",
            f"{acc.tflops_patch:.3f}",
            f"{acc.tflops_total:.2f}",
            f"{format_count(acc.params_total)} / {format_count(acc.params_trainable) if acc.params_trainable else '-'}",
        )
        for label, acc in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def format_count(n: int) -> str:
    """1234567 -> '1.2M', 8031240192 -> '8.03B' (one more digit for billions, like model cards)."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


__all__ = [
    "BASES",
    "METHODS",
    "SIDE_CHANNELS",
    "Accounting",
    "ParameterCount",
    "SideLayout",
    "VisualLayout",
    "account",
    "base_parameters",
    "format_count",
    "format_table",
    "llm_prefill_flops",
    "load_base_config",
    "lora_parameters",
    "parameter_count",
    "patch_config_for",
    "patch_flops",
    "side_layout",
    "visual_layout",
]
