"""`PatchedModel`: a frozen base video LLM, LoRA from peft, and any number of named patches.

Data flow of one step (B samples, T key frames, (h, w) token grid, C_v LLM width)::

    pixel_values_videos (B, T, 3, S, S) --frozen vision tower--> VisualTokens (B, T, h, w, C_v)
    side inputs {name: SideInputs}  --each active patch-->  delta (B, T, h, w, C_v)
    tokens + sum(deltas) --each active adapter--> grid (B, T', h', w', C_v) + extra (B, N_x, C_v)
    [grid, newline, extra] --mm_encoder_outputs--> LLM (+ LoRA) --> logits / loss / generated ids

Patches (kind ``pave``) add deltas and keep the token count; adapters (:mod:`pave.adapters`:
interleave, Q-Former, pooling) run after them, in the order they were added, and may change it.
The processor must then be built with :meth:`PatchedModel.token_layout`.

Saving and loading go through the patch directory format of :mod:`pave.models.patch_dir`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from pave.adapters import AdapterConfig, TokenAdapter, TokenLayout
from pave.methods import Method, SideLayout, get_kind, kind_of, method_for
from pave.models.devices import resolve_dtype
from pave.models.families import family_of
from pave.models.patch_dir import (
    LORA_CONFIG_NAME,
    LORA_WEIGHTS_NAME,
    PATCH_CONFIG_NAME,
    PATCH_WEIGHTS_NAME,
    check_patch_dir,
    load_safetensors,
    read_patch,
    read_patch_config,
    read_record,
    recorded_base,
    recorded_newline_position,
    write_patch,
)
from pave.patch import PatchAttention, PatchConfig
from pave.tokens import SideInputs, VisualTokens

logger = logging.getLogger(__name__)


class PatchedModel(nn.Module):
    """A base video LLM with patches and optional LoRA; base weights stay frozen.

    Args:
        base: a transformers model of a registered base family (:mod:`pave.models.families`),
            e.g. ``LlavaOnevisionForConditionalGeneration``.
        base_name: the model id or path it was loaded from (recorded in saved patches).
    """

    def __init__(self, base: nn.Module, base_name: str | None = None) -> None:
        super().__init__()
        base.requires_grad_(False)
        self.base = base
        self.family = family_of(base.config)
        self.base_name = base_name or getattr(base.config, "_name_or_path", None) or None
        self.patches = nn.ModuleDict()
        self._inactive: set[str] = set()
        # Where the base's newline token goes among a video's tokens (see TokenLayout.newline):
        # transformers' one token per video, or "grid" for patches trained as the authors do.
        self.newline_position = self.family.newline_positions[0]

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_base(cls, model_id_or_path: str, dtype: torch.dtype | str | None = None, **kwargs) -> PatchedModel:
        """Load a base model (a local folder or a model id) from safetensors weights only.

        ``dtype``: default (``None`` or ``"auto"``) bfloat16 when a CUDA GPU is there, else
        float32 (:func:`~pave.models.devices.resolve_dtype`), not the checkpoint's float16."""
        from transformers import AutoConfig

        location = model_location(model_id_or_path)
        config = AutoConfig.from_pretrained(location)  # read once: it names the family and builds the model
        base = family_of(config).load(location, config=config, dtype=resolve_dtype(dtype), **kwargs)
        return cls(base, base_name=str(model_id_or_path)).eval()

    @property
    def llava(self) -> nn.Module:
        """The underlying transformers model, whether or not LoRA wraps it."""
        return self.base.get_base_model() if self.has_lora else self.base

    @property
    def config(self):
        return self.llava.config

    @property
    def has_lora(self) -> bool:
        from peft import PeftModel

        return isinstance(self.base, PeftModel)

    def add_lora(self, r: int = 64, alpha: int = 16, dropout: float = 0.05, target_modules=None) -> None:
        """Add a trainable LoRA adapter to the LLM's attention and MLP projections (paper: r=64, alpha=16)."""
        from peft import LoraConfig, get_peft_model

        if self.has_lora:
            raise ValueError("this model already has a LoRA adapter")
        lora = LoraConfig(
            r=r,
            lora_alpha=alpha,
            lora_dropout=dropout,
            target_modules=target_modules or self.family.lora_target_modules,
        )
        self.base = get_peft_model(self.base, lora)

    def new_config(self, kind: str, side: SideLayout | None = None, key_frames: int | None = None, **settings):
        """A config of a registered ``kind`` (:mod:`pave.methods`) sized for this base: the widths
        and token grid it takes from the base and, given its layout, from a side channel;
        ``key_frames`` per video default to the family's; ``settings`` set or override any field."""
        visual = self.family.visual_layout(self.config, key_frames)
        return get_kind(kind).configure(visual, side, **({"base_model": self.base_name} | settings))

    def patch_config(self, side_dim: int, side_channel: str | None = None, side_grid=(1, 1), **overrides) -> PatchConfig:
        """A :class:`PatchConfig` for side tokens ``side_dim`` wide on ``side_grid``, sized for this
        base (:meth:`new_config` of kind ``pave``; a patch's size does not depend on how many side
        frames a sample has)."""
        side = SideLayout(frames=1, grid=tuple(side_grid), dim=side_dim)
        return self.new_config("pave", side, side_channel=side_channel, **overrides)

    def adapter_config(self, kind: str, **overrides) -> AdapterConfig:
        """A config of adapter ``kind`` (see :mod:`pave.adapters`) sized for this base; ``overrides``
        set the rest, side-channel fields included (:meth:`new_config` without a side layout)."""
        return self.new_config(kind, **overrides)

    def add_patch(self, name: str, patch: PatchConfig | AdapterConfig | nn.Module, trainable: bool = True) -> nn.Module:
        """Add a patch or adapter under ``name``; a config builds a new module (a new patch's
        output is zero)."""
        if name in self.patches:
            raise ValueError(f"a patch named {name!r} already exists")
        module = kind_of(patch).module_cls(patch) if isinstance(patch, (PatchConfig, AdapterConfig)) else patch
        self.check_compatible(module.config, source=name)
        module.to(next(self.llava.parameters()).device)
        module.requires_grad_(trainable)
        self.patches[name] = module
        return module

    def set_active_patches(self, names: Iterable[str]) -> None:
        """Only these patches contribute from now on."""
        names = set(names)
        for name in names:
            self._require(name)
        self._inactive = set(self.patches) - names

    @property
    def active_patches(self) -> list[str]:
        return [n for n in self.patches if n not in self._inactive]

    @contextmanager
    def disable_patches(self) -> Iterator[None]:
        """Run the base model (with LoRA, if any) without any patch."""
        saved = self._inactive
        self._inactive = set(self.patches)
        try:
            yield
        finally:
            self._inactive = saved

    def check_compatible(self, config: PatchConfig | AdapterConfig, source: str) -> None:
        """Refuse a patch or adapter built for another base: widths and token grid must match."""
        expected = {
            "output_dim (LLM hidden size)": self.config.text_config.hidden_size,
            "visual_grid": self.family.visual_layout(self.config).grid,
        }
        if isinstance(config, AdapterConfig):
            actual = config.base_requirements()
            expected["query_dim"] = self.family.query_dim(self.config, "vision")
        else:
            if config.query_source != "learnable":
                expected["query_dim"] = self.family.query_dim(self.config, config.query_source)
            actual = {
                "output_dim (LLM hidden size)": config.output_dim,
                "visual_grid": config.visual_grid or self.family.visual_layout(self.config).grid,
                "query_dim": config.query_dim,
            }
        for key, value in expected.items():
            if key in actual and actual[key] != value:
                raise ValueError(
                    f"{source}: patch has {key}={actual[key]} but the base model "
                    f"{self.base_name or ''} needs {value}; was it trained for another base "
                    f"({config.base_model})?"
                )
        if config.base_model and self.base_name and Path(config.base_model).name != Path(self.base_name).name:
            logger.warning("%s: patch was trained on %s, loading it on %s", source, config.base_model, self.base_name)

    def activation_checkpointing_enable(self, **kwargs) -> None:
        """Recompute the base model's layer activations in backward (transformers' activation
        checkpointing): less memory for long videos at the cost of compute. The Trainer calls
        this when ``train.gradient_checkpointing`` is set."""
        llava = self.llava
        if hasattr(llava, "activation_checkpointing_enable"):
            llava.activation_checkpointing_enable(**kwargs)
            return
        # transformers before the rename: the same call under the old names.
        if "activation_checkpointing_kwargs" in kwargs:
            kwargs["gradient_checkpointing_kwargs"] = kwargs.pop("activation_checkpointing_kwargs")
        llava.gradient_checkpointing_enable(**kwargs)

    # The name transformers versions before the rename call.
    gradient_checkpointing_enable = activation_checkpointing_enable

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def token_layout(self) -> TokenLayout:
        """How many LLM tokens a video becomes with the active adapters (for the processor)."""
        layout = self.family.token_layout(self.config, self.newline_position)
        for name in self.active_patches:
            module = self.patches[name]
            if isinstance(module, TokenAdapter):
                layout = module.layout(layout)
        return layout

    @property
    def method(self) -> Method:
        """The registered method (:mod:`pave.methods`) of the first active patch, with or without LoRA."""
        first = self.active_patches[:1]
        return method_for(self.patches[first[0]].config if first else None, lora=self.has_lora)

    @property
    def side_channels(self) -> list[str]:
        """Names of the side channels the active patches and adapters read."""
        channels = {self.side_channel_of(name) for name in self.active_patches}
        return sorted(c for c in channels if c is not None)

    def set_lora_scale(self, scale: float) -> None:
        """Scale the LoRA update at inference: W x + scale * (alpha / r) * B A x.

        PLLaVA's post-optimization: 0 gives the base LLM, 1 the model as trained, values in
        between mix the two (PLLaVA evaluates at 1/8 of the trained scale). Uses peft's
        ``LoraLayer.set_scale``, which always multiplies the trained alpha / r, so calls do not
        compound.
        """
        from peft.tuners.lora import LoraLayer

        if not self.has_lora:
            raise ValueError("this model has no LoRA adapter to scale")
        for module in self.base.modules():
            if isinstance(module, LoraLayer):
                for adapter in module.scaling:
                    module.set_scale(adapter, scale)

    # ----------------------------------------------------------------- computation
    def encode_video(self, pixel_values_videos: torch.Tensor, frame_times: torch.Tensor | None = None) -> VisualTokens:
        """(B, T, 3, S, S) frames -> the frozen base's visual tokens (no gradient); ``frame_times``
        (B, T) become the times of the token grid's frames."""
        visual = self.family.encode_video(self.llava, pixel_values_videos)
        visual.frame_times = self.family.grid_times(frame_times)
        return visual

    def patched_tokens(
        self,
        visual: VisualTokens,
        side: dict[str, SideInputs] | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, dict[str, PatchAttention]]:
        """Visual tokens (B, T, h, w, C_v) plus the delta of every active patch.

        Each patch reads the side channel named by its config (``side_channel``), or its own
        name when that is unset.
        """
        tokens, attentions = visual.tokens, {}
        for name in self.active_patches:
            patch = self.patches[name]
            if isinstance(patch, TokenAdapter):
                continue
            s = self._side_for(name, side)
            out = patch(
                visual.tokens,
                s.tokens,
                query_features=visual.query_features,
                side_mask=s.mask,
                frame_times=visual.frame_times,
                side_timestamps=s.timestamps,
                return_attention=return_attention,
            )
            tokens = tokens + out.delta
            if return_attention:
                attentions[name] = out.attention
        return tokens, attentions

    def adapted_tokens(
        self, visual: VisualTokens, side: dict[str, SideInputs] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The video's LLM tokens: the patched grid (B, T', h', w', C_v) after every active
        adapter, and the adapters' extra tokens (B, N_x, C_v) in order (None if there are none)."""
        tokens, _ = self.patched_tokens(visual, side)
        extras = []
        for name in self.active_patches:
            adapter = self.patches[name]
            if not isinstance(adapter, TokenAdapter):
                continue
            s = self._side_for(name, side)
            out = adapter(
                tokens,
                query_features=visual.query_features,
                side=None if s is None else s.tokens,
                side_mask=None if s is None else s.mask,
            )
            tokens = out.tokens
            if out.extra is not None:
                extras.append(out.extra)
        return tokens, torch.cat(extras, dim=1) if extras else None

    def _multimodal_inputs(self, input_ids, pixel_values_videos, visual, side, frame_times) -> dict:
        if visual is None:
            if pixel_values_videos is None:
                raise ValueError("pass pixel_values_videos or precomputed visual tokens")
            visual = self.encode_video(pixel_values_videos, frame_times)
        tokens, extra = self.adapted_tokens(visual, side)
        inputs = self.family.llm_inputs(self.llava, visual, tokens, extra, self.newline_position)
        video = inputs["mm_encoder_outputs"]["video"].pooler_output  # (B, N, C_v) or B of (N, C_v)
        produced = [len(v) for v in video]
        placeholders = (input_ids == self.config.video_token_id).sum(dim=1).tolist()
        if placeholders != produced:
            raise ValueError(
                f"the prompts hold {placeholders} video placeholders but the model gives "
                f"{produced} tokens per video; build the processor with layout=model.token_layout()"
            )
        return inputs | self.family.prompt_inputs(self.config, input_ids, inputs)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        visual: VisualTokens | None = None,
        side: dict[str, SideInputs] | None = None,
        frame_times: torch.Tensor | None = None,
        **kwargs,
    ):
        """Logits (and the loss when ``labels`` are given) of the patched model.

        ``input_ids`` (B, N) must hold the video placeholders (see
        :class:`~pave.models.processor.VideoChatProcessor`); frames come either as
        ``pixel_values_videos`` (with optional ``frame_times`` (B, T)) or as cached ``visual``
        tokens, as the collator builds them.
        """
        return self.base(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            **self._multimodal_inputs(input_ids, pixel_values_videos, visual, side, frame_times),
            **kwargs,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        visual: VisualTokens | None = None,
        side: dict[str, SideInputs] | None = None,
        frame_times: torch.Tensor | None = None,
        **generate_kwargs,
    ) -> torch.Tensor:
        """Generated token ids (B, new tokens); prompts must be left-padded for batches."""
        video = self._multimodal_inputs(input_ids, pixel_values_videos, visual, side, frame_times)
        out = self.base.generate(input_ids=input_ids, attention_mask=attention_mask, **video, **generate_kwargs)
        return out[:, input_ids.shape[1] :]

    # ----------------------------------------------------------------- files
    def save_pretrained(self, directory: str | Path, patch: str | None = None, is_main_process: bool = True) -> Path:
        """Save one patch (default: the only trainable one, else the only one) and the LoRA
        adapter. A model without patches (LoRA-only fine-tuning) saves just the adapter."""
        directory = Path(directory)
        name = patch or (self._patch_to_save() if len(self.patches) else None)
        if name is None and not self.has_lora:
            raise ValueError("nothing to save: the model has no patch and no LoRA adapter")
        if not is_main_process:
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        if name is not None:
            module = self._require(name)
            if module.config.base_model is None:
                module.config.base_model = self.base_name
            write_patch(directory, name, module, self.newline_position)
        if self.has_lora:
            self.base.save_pretrained(directory, safe_serialization=True)
        return directory

    def load_trainable_state(self, directory: str | Path) -> None:
        """Load a checkpoint written by :meth:`save_pretrained` into this model's existing
        trainable patch and LoRA adapter (resuming training)."""
        from peft import set_peft_model_state_dict

        directory = Path(directory)
        if (directory / PATCH_CONFIG_NAME).exists():
            module = self._require(read_record(directory)["name"])
            module.load_state_dict(load_safetensors(directory / PATCH_WEIGHTS_NAME), strict=True)
        if self.has_lora:
            result = set_peft_model_state_dict(self.base, load_safetensors(directory / LORA_WEIGHTS_NAME))
            if result.unexpected_keys:
                raise ValueError(f"{directory}: unexpected LoRA weights {result.unexpected_keys[:5]}")

    def load_patch(self, directory: str | Path, name: str | None = None, trainable: bool = False) -> nn.Module:
        """Load a saved patch (weights strictly, from safetensors only) under ``name``."""
        config, _, saved_name = read_patch_config(directory)
        self.check_compatible(config, source=str(directory))
        return self.add_patch(name or saved_name, read_patch(directory), trainable=trainable)

    def load_lora(self, directory: str | Path, trainable: bool = False) -> None:
        """Load a LoRA adapter saved by peft (safetensors only)."""
        from peft import PeftModel

        if self.has_lora:
            raise ValueError("this model already has a LoRA adapter")
        load_safetensors(Path(directory) / LORA_WEIGHTS_NAME, check_only=True)
        self.base = PeftModel.from_pretrained(self.base, str(directory), is_trainable=trainable)

    @classmethod
    def from_pretrained(
        cls,
        patch_dirs: str | Path | Iterable[str | Path],
        base: str | PatchedModel | None = None,
        trainable: bool = False,
        lora_scale: float | None = None,
        **base_kwargs,
    ) -> PatchedModel:
        """Load one or more saved patches onto a base (default: the base recorded in the first patch).

        Patches stack: each adds its delta. LoRA comes from the last directory that has one (in
        stage-wise training that adapter was trained with all earlier patches present);
        ``lora_scale`` scales its update (see :meth:`set_lora_scale`).
        """
        dirs = [Path(patch_dirs)] if isinstance(patch_dirs, (str, Path)) else [Path(d) for d in patch_dirs]
        if not dirs:
            raise ValueError("no patch directory given")
        if base is None:
            base = recorded_base(dirs[0])
        for directory in dirs:
            check_patch_dir(directory)
        model = cls.from_base(base, **base_kwargs) if isinstance(base, (str, Path)) else base
        positions = {recorded_newline_position(d) for d in dirs if (d / PATCH_CONFIG_NAME).exists()}
        if len(positions) > 1:
            raise ValueError(f"the patches were trained with different newline positions {sorted(positions)}; they cannot stack")
        if positions:
            position = positions.pop()
            try:
                model.family.check_newline(position)
            except ValueError as exc:
                raise ValueError(f"{dirs[0]} was trained with another base: {exc}") from None
            model.newline_position = position
        for directory in dirs:
            if not (directory / PATCH_CONFIG_NAME).exists():  # a LoRA-only (FT) directory
                continue
            saved_name = read_patch_config(directory)[2]
            name = saved_name if saved_name not in model.patches else f"{saved_name}_{len(model.patches)}"
            model.load_patch(directory, name=name, trainable=trainable)
        lora_dirs = [d for d in dirs if (d / LORA_CONFIG_NAME).exists()]
        if len(lora_dirs) > 1:
            logger.warning("several patch directories hold a LoRA adapter; using the one in %s", lora_dirs[-1])
        if lora_dirs:
            model.load_lora(lora_dirs[-1], trainable=trainable)
        if lora_scale is not None:
            model.set_lora_scale(lora_scale)
        return model.eval()

    # ----------------------------------------------------------------- helpers
    def side_channel_of(self, name: str) -> str | None:
        """The side channel a patch or adapter reads (its config's, else its own name), or None."""
        config = self.patches[name].config
        if not config.uses_side:
            return None
        return config.side_channel or name

    def _side_for(self, name: str, side: dict[str, SideInputs] | None) -> SideInputs | None:
        key, side = self.side_channel_of(name), side or {}
        if key is not None and key not in side:
            raise ValueError(f"patch {name!r} needs side channel {key!r}; given: {sorted(side) or 'none'}")
        return None if key is None else side[key]

    def _require(self, name: str) -> nn.Module:
        if name not in self.patches:
            raise KeyError(f"no patch named {name!r}; patches: {list(self.patches) or 'none'}")
        return self.patches[name]

    def _patch_to_save(self) -> str:
        trainable = [n for n, m in self.patches.items() if any(p.requires_grad for p in m.parameters())]
        candidates = trainable or list(self.patches)
        if len(candidates) != 1:
            raise ValueError(f"name the patch to save: patch=one of {list(self.patches) or 'none (add one first)'}")
        return candidates[0]


def looks_local(name: str | Path) -> bool:
    """Whether a model name is meant as a local path (a hub id is ``org/name``)."""
    text = str(name)
    return Path(text).is_absolute() or text.startswith((".", "~")) or text.count("/") > 1 or "\\" in text


def model_location(name: str | Path) -> str:
    """A model id as the hub takes it, or a local folder with ``~`` expanded; a local-looking
    path that does not exist fails at once rather than after the hub client's retries."""
    if not looks_local(name):
        return str(name)
    path = Path(name).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such model folder")
    return str(path)
