"""LLaVA-OneVision (and LLaVA-Video, the same transformers class) as a base family.

transformers' ``LlavaOnevisionModel.get_video_features`` returns the projected, 2x2-pooled video
tokens followed by one ``image_newline`` token; ``forward`` and ``generate`` accept precomputed
features through ``mm_encoder_outputs={"video": ...}``. That pair is the seam a patch uses: we
take the tokens out, add the patches' deltas and hand them back, without copying model code.

LLaVA-Video-7B/72B-Qwen2 in transformers' format (``llava-hf/LLaVA-Video-7B-Qwen2-hf``) are
``LlavaOnevisionForConditionalGeneration`` checkpoints too: SigLIP at 384 px, the same pooling
and template, 64 frames in their own protocol; this family's ``model_ids`` name them.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from pave.adapters.base import NEWLINE_POSITIONS, TokenLayout
from pave.configs import bundled_config
from pave.methods import VisualLayout
from pave.models.families import BaseFamily, lora_targets, register
from pave.models.tiny import (
    IMAGE_TOKEN,
    VIDEO_TOKEN,
    TinySizes,
    TokenizerSpec,
    build_tokenizer,
    save_tokenizer,
    write_json,
)
from pave.models.towers import hidden_states
from pave.tokens import VisualTokens

# The system message LLaVA-OneVision was trained with (its conversation template).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
LORA_TARGET_MODULES = lora_targets("language_model")

#: Qwen2's special tokens as the LLaVA-OneVision checkpoints number them (after 151,643 ordinary
#: tokens).
QWEN2_TOKENS = TokenizerSpec(
    special=("<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN, VIDEO_TOKEN),
    real_ids={"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, IMAGE_TOKEN: 151646, VIDEO_TOKEN: 151647},
    eos="<|im_end|>",
    pad="<|endoftext|>",
)

# The Qwen2-based checkpoints' tokenizers keep Qwen2's text-only template, which cannot render
# content parts.
TEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# A real-layout model: the real checkpoints' SigLIP input (384 px, 14-px patches: 27 x 27).
REAL_INPUT = {"image_size": 384, "patch_size": 14}

# The multimodal template the LLaVA-OneVision checkpoints keep beside their processor
# (chat_template.json): content parts only; images, then videos, then text.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] }}{% endgeneration %}{% endfor %}"
    "{% endif %}"
    "{{'<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)



def visual_grid(config) -> tuple[int, int]:
    """(h, w) of the visual-token grid of one frame: the patch grid pooled 2x2 (ceil)."""
    side = config.vision_config.image_size // config.vision_config.patch_size
    return (math.ceil(side / 2), math.ceil(side / 2))


def query_dim(config, source: str) -> int:
    """Width of the patch's query features for a query source."""
    if source == "vision":
        layers = config.vision_feature_layer
        return config.vision_config.hidden_size * (1 if isinstance(layers, int) else len(layers))
    return config.text_config.hidden_size


@torch.no_grad()
def encode_video(model, pixel_values_videos: torch.Tensor, chunk_frames: int = 16) -> VisualTokens:
    """Run the frozen vision path of a ``LlavaOnevisionForConditionalGeneration``.

    The same tokens as ``get_video_features`` (a test checks it), computed ``chunk_frames``
    frames at a time from the one vision layer the model reads, so memory stays flat in the
    number of frames: ``get_video_features`` needs every hidden state of every frame at once.

    Args:
        model: the (unwrapped) transformers model.
        pixel_values_videos: (B, T, 3, S, S).
        chunk_frames: frames through the vision tower at once.
    """
    config = model.config
    inner = model.model
    batch, frames = pixel_values_videos.shape[:2]
    flat = pixel_values_videos.flatten(0, 1).to(inner.vision_tower.dtype)
    tokens, queries = [], []
    for chunk in flat.split(chunk_frames):
        selected = hidden_states(inner.vision_tower, chunk, config.vision_feature_layer)
        if config.vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        queries.append(inner.apply_pooling(selected))
        tokens.append(inner.apply_pooling(inner.multi_modal_projector(selected)))
    h, w = visual_grid(config)
    return VisualTokens(
        tokens=torch.cat(tokens).view(batch, frames, h, w, -1),
        query_features=torch.cat(queries).view(batch, frames, h, w, -1),
    )


def video_encoder_outputs(
    model, tokens: torch.Tensor, extra: torch.Tensor | None = None, newline: str = "one_token"
) -> dict[str, BaseModelOutputWithPooling]:
    """(B, T, h, w, C_v) tokens -> ``mm_encoder_outputs`` for forward/generate: the tokens with
    the model's newline token where ``newline`` puts it (``"one_token"``: once after the video,
    exactly as ``get_video_features`` does; ``"grid"``: after every row of every frame, as the
    authors' LLaVA-OneVision code with ``mm_newline_position=grid``; ``"frame"``: after every
    frame; ``"no_token"``: none), then the adapters' ``extra`` tokens (B, N_x, C_v) if any."""
    batch, frames, rows, _, width = tokens.shape
    line = model.model.image_newline.to(tokens.dtype)
    if newline == "grid":
        video = torch.cat([tokens, line.expand(batch, frames, rows, 1, width)], dim=3).flatten(1, 3)
    elif newline == "frame":
        video = torch.cat([tokens.flatten(2, 3), line.expand(batch, frames, 1, width)], dim=2).flatten(1, 2)
    elif newline == "one_token":
        video = torch.cat([tokens.flatten(1, 3), line.expand(batch, 1, width)], dim=1)
    elif newline == "no_token":
        video = tokens.flatten(1, 3)
    else:
        raise ValueError(f"unknown newline position {newline!r}")
    parts = (video,) if extra is None else (video, extra.to(tokens.dtype))
    return {"video": BaseModelOutputWithPooling(pooler_output=torch.cat(parts, dim=1))}


class LlavaOnevision(BaseFamily):
    """``LlavaOnevisionForConditionalGeneration``: SigLIP, a 2-layer projector, 2x2 bilinear
    pooling (27 x 27 patches -> 14 x 14 tokens a frame at 384 px) and a Qwen2 LLM."""

    name = "llava-onevision"
    model_types = ("llava_onevision",)
    model_ids = (
        "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
        "llava-hf/llava-onevision-qwen2-7b-ov-hf",
        "llava-hf/LLaVA-Video-7B-Qwen2-hf",
    )
    default_frames = 32
    system_prompt = DEFAULT_SYSTEM_PROMPT
    newline_positions = NEWLINE_POSITIONS
    lora_target_modules = LORA_TARGET_MODULES

    def model_class(self):
        from transformers import LlavaOnevisionForConditionalGeneration

        return LlavaOnevisionForConditionalGeneration

    def visual_layout(self, config, frames: int | None = None) -> VisualLayout:
        """32 frames of SigLIP's 27 x 27 patches pooled to 14 x 14; the one ``image_newline``
        token per video is left out, as in the paper's 6,272."""
        return VisualLayout(
            frames=frames or self.default_frames,
            grid=visual_grid(config),
            feature_dim=query_dim(config, "vision"),
            width=config.text_config.hidden_size,
        )

    def token_layout(self, config, newline: str) -> TokenLayout:
        self.check_newline(newline)
        return TokenLayout(grid=visual_grid(config), newline=newline)

    def encode_video(self, model, pixel_values_videos: torch.Tensor) -> VisualTokens:
        return encode_video(model, pixel_values_videos)

    def llm_inputs(self, model, visual, tokens, extra, newline):
        return {"mm_encoder_outputs": video_encoder_outputs(model, tokens.to(model.dtype), extra, newline)}

    def save_tiny(
        self,
        path: Path,
        seed: int = 0,
        real_layout: bool = False,
        sizes: TinySizes | None = None,
        template_file: str = "chat_template.json",
    ) -> Path:
        """A tiny SigLIP + Qwen2 saved with the files of the llava-hf checkpoints: weights
        (safetensors), config, generation config, tokenizer (Qwen2's text-only template), the
        processor's multimodal template in ``template_file`` (``chat_template.json`` or
        ``chat_template.jinja``), ``processor_config.json`` and ``preprocessor_config.json``.

        ``real_layout``: also the real special-token ids and config values (:func:`tiny_config`)
        and, unless ``sizes`` says otherwise, the real input size and grid (384 px, 27 x 27).
        """
        from transformers import LlavaOnevisionForConditionalGeneration

        sizes = sizes or (TinySizes(**REAL_INPUT) if real_layout else TinySizes())
        tokenizer = build_tokenizer(QWEN2_TOKENS, sizes.vocab_size, real_ids=real_layout, chat_template=TEXT_CHAT_TEMPLATE)
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(tiny_config(tokenizer, sizes, real_values=real_layout))
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(path)
        save_tokenizer(path, tokenizer, "Qwen2Tokenizer", TEXT_CHAT_TEMPLATE)
        _save_processor_files(path, sizes, template_file)
        return path


def tiny_config(tokenizer, sizes: TinySizes | None = None, real_values: bool = False):
    """A ``LlavaOnevisionConfig`` with a tiny SigLIP and a tiny Qwen2.

    ``real_values``: everything but the widths and depths as in the real 0.5B checkpoint's
    config (vocabulary size, RoPE base, norm epsilon, context length, token ids, activations)."""
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    sizes = sizes or TinySizes()
    real = bundled_config("llava-onevision-0.5b.json") if real_values else None
    widths = sizes.vision_widths()
    vision = SiglipVisionConfig(**({**real["vision_config"], **widths} if real else widths))
    text_widths = sizes.text_widths() | {"pad_token_id": tokenizer.pad_token_id}
    if real:
        text = Qwen2Config(**{**real["text_config"], **text_widths})
    else:
        text = Qwen2Config(
            vocab_size=len(tokenizer),
            max_position_embeddings=4096,
            tie_word_embeddings=True,
            eos_token_id=tokenizer.eos_token_id,
            **text_widths,
        )
    top = {k: v for k, v in (real or {}).items() if k not in ("text_config", "vision_config", "_name_or_path")}
    return LlavaOnevisionConfig(
        **{
            "image_token_index": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
            "video_token_index": tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
            "vision_feature_layer": -1,
            "vision_feature_select_strategy": "full",
            "tie_word_embeddings": True,
            **top,
        },
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
    )


def _save_processor_files(path: Path, sizes: TinySizes, template_file: str) -> None:
    """The processor files of the llava-hf checkpoints, with this model's input size."""
    if template_file == "chat_template.json":
        write_json(path / template_file, {"chat_template": CHAT_TEMPLATE})
    elif template_file == "chat_template.jinja":
        (path / template_file).write_text(CHAT_TEMPLATE)
    else:
        raise ValueError(f"template_file must be chat_template.json or chat_template.jinja, got {template_file!r}")
    grid = sizes.image_size // sizes.patch_size
    write_json(
        path / "processor_config.json",
        {
            "image_token": IMAGE_TOKEN,
            "num_image_tokens": grid * grid,
            "processor_class": "LlavaOnevisionProcessor",
            "video_token": VIDEO_TOKEN,
            "vision_feature_select_strategy": "full",
        },
    )
    write_json(
        path / "preprocessor_config.json",
        {
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_pad": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "LlavaOnevisionImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "processor_class": "LlavaOnevisionProcessor",
            "resample": 3,
            "rescale_factor": 1 / 255,
            "size": {"height": sizes.image_size, "width": sizes.image_size},
        },
    )


register(LlavaOnevision())
