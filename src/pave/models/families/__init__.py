"""Base-model families: everything a patch needs to know about one kind of video LLM, behind one
interface, so that the rest of the package never names a model class.

A family (:class:`BaseFamily`) says, for the transformers models of its ``model_types``:

- how the frozen vision path turns ``pixel_values_videos`` (B, T, 3, H, W) into a
  :class:`~pave.tokens.VisualTokens` grid (B, T', h, w, C_v) with query features (``encode_video``),
- how (adapted) tokens go back into the LLM through the model's own ``mm_encoder_outputs``
  argument, with whatever else its forward needs (``llm_inputs``),
- how many placeholder tokens a video becomes (``token_layout``), its frame preprocessing
  (``preprocessor``), chat defaults, LoRA targets and the layout FLOPs accounting reads
  (``visual_layout``, from the config alone),
- and how to build a tiny random model of the same classes, saved like the real checkpoint
  (``save_tiny``), for tests and the quickstart.

Adding a base is one module here with a subclass and a :func:`register` call, and its module
name in ``_BUILTIN`` (the registry imports those on first lookup).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from pave.adapters.base import TokenLayout
from pave.methods import VisualLayout
from pave.models.preprocess import VideoPreprocessor
from pave.tokens import VisualTokens

# The LLM Linear layers LoRA adapts in every family (all are Qwen2 or LLaMA decoders): attention,
# then MLP projections (paper App. B.2).
LORA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
LORA_MLP = ("gate_proj", "up_proj", "down_proj")


def lora_targets(language_model: str) -> str:
    """A peft ``target_modules`` regex for the LoRA projections of the LLM under the module path
    ``language_model`` (so the vision tower's q/k/v/o, which share the names, are left alone)."""
    attention, mlp = "|".join(LORA_ATTENTION), "|".join(LORA_MLP)
    return rf".*{language_model}\.layers\.\d+\.(self_attn\.({attention})|mlp\.({mlp}))"


class BaseFamily:
    """What a patch needs from one family of base video LLMs.

    Class attributes:
        name: the family's name (``pave flops --base``, ``pave quickstart --base tiny-<name>``).
        model_types: the ``config.model_type`` values it handles.
        model_ids: the real checkpoints (documentation and error messages).
        default_frames: key frames per video in the family's own protocol.
        system_prompt: the system message the base was trained with (None: none).
        newline_positions: where a newline token may go among a video's tokens (the first is the
            default; ``("no_token",)`` for bases without one).
        lora_target_modules: peft's ``target_modules`` for LoRA on the LLM only.
    """

    name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    model_ids: ClassVar[tuple[str, ...]] = ()
    default_frames: ClassVar[int]
    system_prompt: ClassVar[str | None] = None
    newline_positions: ClassVar[tuple[str, ...]] = ("no_token",)
    lora_target_modules: ClassVar[str]

    # ---- the model
    def model_class(self) -> type[nn.Module]:
        """The transformers ``...ForConditionalGeneration`` class."""
        raise NotImplementedError

    def load(self, location: str, **kwargs) -> nn.Module:
        """The base model from a local folder or model id, from safetensors weights only."""
        return self.model_class().from_pretrained(location, use_safetensors=True, **kwargs)

    # ---- from the config alone
    def visual_layout(self, config, frames: int | None = None) -> VisualLayout:
        """The visual tokens one video of ``frames`` key frames (default: the family's) becomes."""
        raise NotImplementedError

    def query_dim(self, config, source: str) -> int:
        """Width of a patch's query features: the vision features for ``"vision"``, the LLM
        width for ``"projected"`` (and ``"learnable"``, which ignores it)."""
        layout = self.visual_layout(config)
        return layout.feature_dim if source == "vision" else layout.width

    def token_layout(self, config, newline: str) -> TokenLayout:
        """The placeholder tokens of one video before any adapter changes them."""
        raise NotImplementedError

    def check_newline(self, newline: str) -> None:
        if newline not in self.newline_positions:
            raise ValueError(
                f"{self.name} bases take newline positions {self.newline_positions}, got {newline!r}"
            )

    def preprocessor(self, location: str | None, config):
        """Frames (T, H, W, 3) uint8 -> pixel values (T, 3, S, S): a
        :class:`~pave.models.preprocess.VideoPreprocessor` with the numbers of the checkpoint at
        ``location``, else (none there, or no location) :meth:`default_preprocessor`."""
        if location is not None:
            try:
                return VideoPreprocessor.from_pretrained(location)
            except OSError:
                pass
        return self.default_preprocessor(config)

    def default_preprocessor(self, config):
        """The preprocessing of a checkpoint that ships no preprocessor file: the vision tower's
        input size with SigLIP's numbers."""
        return VideoPreprocessor(size=config.vision_config.image_size)

    # ---- the seam
    def encode_video(self, model: nn.Module, pixel_values_videos: torch.Tensor) -> VisualTokens:
        """(B, T, 3, H, W) -> the frozen base's visual tokens (no gradient); ``frame_times`` are
        set by the caller, per key frame (families that merge frames average them)."""
        raise NotImplementedError

    def grid_times(self, frame_times: torch.Tensor | None) -> torch.Tensor | None:
        """(B, T) key-frame times -> (B, T') times of the token grid's frames (default: the same)."""
        return frame_times

    def llm_inputs(
        self, model: nn.Module, visual: VisualTokens, tokens: torch.Tensor, extra: torch.Tensor | None, newline: str
    ) -> dict[str, Any]:
        """The keyword arguments ``forward``/``generate`` take for the video: at least
        ``mm_encoder_outputs`` with ``tokens`` (B, T', h', w', C_v), the grid after patches and
        adapters, laid out as :meth:`token_layout` counts them, then the adapters' ``extra``
        tokens (B, N_x, C_v)."""
        raise NotImplementedError

    def prompt_inputs(self, config, input_ids: torch.Tensor, inputs: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``forward``/``generate`` that depend on the prompt's ids (B, N) as
        well as on the video's :meth:`llm_inputs` ``inputs``: none by default; Qwen2.5-VL's
        ``mm_token_type_ids``, which say which tokens take its multimodal positions."""
        return {}

    # ---- tests and the quickstart
    def save_tiny(self, path: Path, seed: int = 0, real_layout: bool = False, **sizes) -> Path:
        """A tiny random model of the family's classes, saved with the files of a real checkpoint."""
        raise NotImplementedError


_FAMILIES: dict[str, BaseFamily] = {}
# Modules whose import registers the built-in families.
_BUILTIN = ("llava_onevision", "video_llava", "qwen2_5_vl")


def register(family: BaseFamily) -> BaseFamily:
    if family.name in _FAMILIES:
        raise ValueError(f"base family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def families() -> dict[str, BaseFamily]:
    """Every registered family, by name."""
    for module in _BUILTIN:
        importlib.import_module(f"{__name__}.{module}")
    return dict(_FAMILIES)


def get_family(name: str) -> BaseFamily:
    known = families()
    if name not in known:
        raise ValueError(f"unknown base family {name!r}; registered: {', '.join(sorted(known))}")
    return known[name]


def family_of(config) -> BaseFamily:
    """The family of a transformers config (or of a model, through its ``config``)."""
    config = getattr(config, "config", config)
    for family in families().values():
        if config.model_type in family.model_types:
            return family
    supported = sorted(t for f in families().values() for t in f.model_types)
    raise ValueError(f"no base family handles model type {config.model_type!r}; supported: {', '.join(supported)}")
