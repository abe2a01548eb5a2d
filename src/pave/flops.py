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

Every registered method (:mod:`pave.methods`) is counted: ``base`` (the frozen model), ``ft``
(LoRA only), and LoRA plus the module of each kind, sized by the kind's own rule and counted by
its FLOPs rule (``pave``: :func:`patch_flops`; adapters: their formula, or their matrix products
counted by ``FlopCounterMode`` on the meta device); adapters that add or pool tokens change the
LLM's token count as their token layout says.

>>> from pave.flops import account
>>> acc = account("llava-onevision-0.5b", "pave", "3d")
>>> round(acc.tflops_llm, 2), acc.params_trainable
(8.01, 41428608)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pave.adapters.base import TokenAdapter, TokenLayout
from pave.configs import bundled_config
from pave.methods import SideLayout, VisualLayout, get_kind, get_method
from pave.models.families import family_of
from pave.names import BUNDLED_BASES, FLOPS_DURATION, FLOPS_TEXT_TOKENS, SIDE_CHANNEL_KINDS
from pave.patch.method import patch_flops

BASES = BUNDLED_BASES
SIDE_CHANNELS = ("none", *SIDE_CHANNEL_KINDS)
LORA_RANK = 64
TEXT_TOKENS = FLOPS_TEXT_TOKENS  # the paper's prompt length
DURATION = FLOPS_DURATION  # seconds: the paper's assumed video length for audio and dense video


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
        method: the registered method's name.
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
    """The visual-token layout of a base model for one video, as its family
    (:mod:`pave.models.families`) counts it: LLaVA-OneVision's 32 x 14 x 14 without its newline
    token (the paper's 6,272), Video-LLaVA's 8 x (16 x 16 + CLS), ..."""
    return family_of(config).visual_layout(config, frames)


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


def method_config(method: str, visual: VisualLayout, side: SideLayout | None):
    """The config a method's kind takes for a base's visual layout and a side channel, with the
    method's own settings and otherwise the kind's defaults (the paper's sizes)."""
    entry = get_method(method)
    return get_kind(entry.kind).configure(visual, side, **entry.settings)


def lora_parameters(text_config, rank: int = LORA_RANK) -> int:
    """Parameters of LoRA of rank ``rank`` on every Linear of the LLM's layers (attention and MLP,
    paper App. B.2): r (in + out) each."""
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
    patch_config=None,
    lora_rank: int = LORA_RANK,
) -> Accounting:
    """Prefill FLOPs and parameters of ``base`` adapted by ``method`` with ``side_channel``.

    The method's kind (:mod:`pave.methods`) sizes its module and counts its FLOPs; the module is
    built on the meta device to count its parameters and, for adapters, the LLM tokens it makes.

    Args:
        base: anything :func:`load_base_config` takes.
        method: a registered method (:func:`pave.methods.methods`).
        side_channel: one of :data:`SIDE_CHANNELS`, or explicit :class:`SideLayout`.
        frames: key frames; the base family's default (32 for LLaVA-OneVision) if None.
        text_tokens: text tokens of the prompt.
        duration: video length in seconds, for audio and dense-video side channels.
        patch_config: the patch or adapter config to count instead of the method's default sizing.
        lora_rank: rank of the LoRA on the LLM.
    """
    entry = get_method(method)
    config = load_base_config(base)
    visual = visual_layout(config, frames)
    if isinstance(side_channel, SideLayout):
        side, side_name = side_channel, "custom"
    else:
        # Side channels sampled per key frame (3D, exo) follow the key frames, which a base may
        # merge into fewer token frames (Qwen2.5-VL: 2 into 1).
        key_frames = frames or family_of(config).default_frames
        side, side_name = side_layout(side_channel, key_frames, duration), side_channel
    if entry.side == "required" and side is None:
        raise ValueError(f"method {method!r} needs a side channel; choose from {SIDE_CHANNELS[1:]}")
    if entry.side == "none" and side is not None:
        raise ValueError(f"method {method!r} uses no side channel, got {side_name!r}")
    if patch_config is not None and entry.kind is None:
        raise ValueError(f"a patch_config applies to methods that add a module, not to {method!r}")

    text = config.text_config
    llm_tokens = visual.llm_tokens + text_tokens
    flops_patch = added = 0
    if entry.kind is not None:
        kind = get_kind(entry.kind)
        module_config = patch_config or method_config(method, visual, side)
        flops_patch = kind.count_flops(module_config, visual, side)
        with torch.device("meta"):
            module = kind.module_cls(module_config)
        added = parameter_count(module).total
        if isinstance(module, TokenAdapter):  # as the paper counts: the grid and extra tokens, no newline
            layout = module.layout(TokenLayout(grid=visual.grid))
            llm_tokens += layout.grid_tokens(visual.frames) + layout.extra - visual.grid_tokens
    trainable = lora_parameters(text, lora_rank) + added if entry.lora else 0
    return Accounting(
        base=str(base) if isinstance(base, (str, os.PathLike)) else config.name_or_path or config.model_type,
        method=entry.name,
        side_channel=side_name,
        llm_tokens=llm_tokens,
        flops_llm=llm_prefill_flops(text, llm_tokens),
        flops_patch=flops_patch,
        params_total=base_parameters(config) + trainable,
        params_trainable=trainable,
    )


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
    "method_config",
    "patch_flops",
    "side_layout",
    "visual_layout",
]
