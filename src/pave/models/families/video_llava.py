"""Video-LLaVA as a base family: the second base of the paper's Table 5.

``VideoLlavaForConditionalGeneration`` encodes each of its 8 frames with a CLIP ViT-L/14 video
tower at 224 px and reads ``hidden_states[vision_feature_layer]`` (-2) of it *with* the CLS
token: 1 + 16 x 16 tokens a frame, projected by a 2-layer MLP to the LLM's 4,096 (Vicuna-7B), and
no newline token. A patch updates the 16 x 16 grid; each frame's CLS token passes through
unchanged (:attr:`VisualTokens.frame_extra <pave.tokens.VisualTokens.frame_extra>`) and goes back
in front of its frame's grid, so the LLM sees the 2,056 tokens it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from pave.adapters.base import TokenLayout
from pave.configs import bundled_config
from pave.methods import VisualLayout
from pave.models.families import BaseFamily, lora_targets, register
from pave.models.preprocess import CLIP_MEAN, CLIP_STD, VideoPreprocessor
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

# The conversation the Video-LLaVA checkpoints were trained with (Vicuna v1).
SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)

# The llava-hf style template the Video-LLaVA checkpoint keeps beside its processor: Vicuna's
# "SYSTEM USER: <video>\nQUESTION ASSISTANT:" with content parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' ' }}{% endgeneration %}{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

#: LLaMA's special tokens as the Video-LLaVA checkpoint numbers them.
LLAMA_TOKENS = TokenizerSpec(
    special=("<unk>", "<s>", "</s>", IMAGE_TOKEN, VIDEO_TOKEN, "<pad>"),
    real_ids={"<unk>": 0, "<s>": 1, "</s>": 2, IMAGE_TOKEN: 32000, VIDEO_TOKEN: 32001, "<pad>": 32002},
    eos="</s>",
    pad="<pad>",
    bos="<s>",
)



def _grid(config) -> tuple[int, int]:
    side = config.vision_config.image_size // config.vision_config.patch_size
    return (side, side)


class VideoLlava(BaseFamily):
    """``VideoLlavaForConditionalGeneration``: CLIP video tower, MLP projector, LLaMA LLM."""

    name = "video-llava"
    model_types = ("video_llava",)
    model_ids = ("LanguageBind/Video-LLaVA-7B-hf",)
    default_frames = 8
    system_prompt = SYSTEM_PROMPT
    lora_target_modules = lora_targets("language_model")

    def model_class(self):
        from transformers import VideoLlavaForConditionalGeneration

        return VideoLlavaForConditionalGeneration

    def visual_layout(self, config, frames: int | None = None) -> VisualLayout:
        """8 frames of 16 x 16 CLIP patches, unpooled, each with its CLS token."""
        layers = config.vision_feature_layer
        return VisualLayout(
            frames=frames or self.default_frames,
            grid=_grid(config),
            feature_dim=config.vision_config.hidden_size * (1 if isinstance(layers, int) else len(layers)),
            width=config.text_config.hidden_size,
            extra_per_frame=1,
        )

    def token_layout(self, config, newline: str) -> TokenLayout:
        self.check_newline(newline)
        return TokenLayout(grid=_grid(config), newline=newline, frame_extra=1)

    def default_preprocessor(self, config):
        """CLIP's: the shortest edge to the tower's input size, a centre crop, CLIP's numbers."""
        return VideoPreprocessor(size=config.vision_config.image_size, mean=CLIP_MEAN, std=CLIP_STD, crop=True)

    @torch.no_grad()
    def encode_video(self, model, pixel_values_videos: torch.Tensor, chunk_frames: int = 16) -> VisualTokens:
        """The same tokens as ``get_video_features`` (a test checks it): the projected tower
        output of every frame, split into its CLS token and its patch grid; the query features are
        the tower's (unprojected) grid."""
        config, inner = model.config, model.model
        batch, frames = pixel_values_videos.shape[:2]
        flat = pixel_values_videos.flatten(0, 1).to(inner.video_tower.dtype)
        features, projected = [], []
        for chunk in flat.split(chunk_frames):
            selected = hidden_states(inner.video_tower, chunk, config.vision_feature_layer)  # (n, 1 + h * w, C)
            features.append(selected[:, 1:])
            projected.append(inner.multi_modal_projector(selected))
        h, w = _grid(config)
        projected = torch.cat(projected).view(batch, frames, 1 + h * w, -1)
        return VisualTokens(
            tokens=projected[:, :, 1:].reshape(batch, frames, h, w, -1),
            query_features=torch.cat(features).view(batch, frames, h, w, -1),
            frame_extra=projected[:, :, :1],
        )

    def llm_inputs(self, model, visual, tokens, extra, newline):
        """Each frame's CLS token, then its (patched) grid, frame after frame, then ``extra``."""
        batch, frames = tokens.shape[:2]
        if visual.frame_extra is None or visual.frame_extra.shape[1] != frames:
            raise ValueError(
                "Video-LLaVA needs each frame's CLS token in front of its grid: an adapter that changes "
                "the number of frames cannot be used with it"
            )
        dtype = model.dtype
        video = torch.cat([visual.frame_extra.to(dtype), tokens.to(dtype).flatten(2, 3)], dim=2).flatten(1, 2)
        parts = (video,) if extra is None else (video, extra.to(dtype))
        return {"mm_encoder_outputs": {"video": BaseModelOutputWithPooling(pooler_output=torch.cat(parts, dim=1))}}

    def save_tiny(self, path: Path, seed: int = 0, real_layout: bool = False, sizes: TinySizes | None = None) -> Path:
        """A tiny CLIP + LLaMA saved with the files of ``LanguageBind/Video-LLaVA-7B-hf``: weights
        (safetensors), config, generation config, a LLaMA-style tokenizer (``<s>`` first), the
        processor's template in ``chat_template.json``, ``processor_config.json`` and the CLIP
        ``preprocessor_config.json`` (shortest edge, centre crop). ``real_layout``: the real
        special-token ids and config values, and the real 224-px input with 14-px patches."""
        from transformers import (
            CLIPVisionConfig,
            LlamaConfig,
            VideoLlavaConfig,
            VideoLlavaForConditionalGeneration,
        )

        # Unpooled, so 8-px patches give the 4 x 4 grid the tiny LLaVA-OneVision pools 8 x 8 to.
        sizes = sizes or (TinySizes(image_size=224, patch_size=14) if real_layout else TinySizes(patch_size=8))
        tokenizer = build_tokenizer(LLAMA_TOKENS, sizes.vocab_size, real_ids=real_layout)
        real = bundled_config("video-llava-7b.json") if real_layout else {}
        vision = sizes.vision_widths()
        text = sizes.text_widths() | dict(
            num_key_value_heads=sizes.text_heads,  # Vicuna has no grouped-query attention
            vocab_size=len(tokenizer),
            max_position_embeddings=4096,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        top = {k: v for k, v in real.items() if k not in ("text_config", "vision_config", "_name_or_path", "architectures")}
        config = VideoLlavaConfig(
            **{
                "vision_feature_layer": -2,
                "vision_feature_select_strategy": "default",
                **top,
                "image_token_index": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                "video_token_index": tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
                "pad_token_id": tokenizer.pad_token_id,
            },
            vision_config=CLIPVisionConfig(**{**real.get("vision_config", {}), **vision}).to_dict(),
            text_config=LlamaConfig(**{**real.get("text_config", {}), **text}).to_dict(),
        )
        torch.manual_seed(seed)
        model = VideoLlavaForConditionalGeneration(config)
        model.generation_config.update(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
        )
        model.save_pretrained(path)
        save_tokenizer(path, tokenizer, tokenizer_class="PreTrainedTokenizerFast", chat_template=None)
        _save_processor_files(path, sizes)
        return path


def _save_processor_files(path: Path, sizes: TinySizes) -> None:
    """The processor files of ``LanguageBind/Video-LLaVA-7B-hf``, with this model's input size."""
    write_json(path / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    write_json(
        path / "processor_config.json",
        {"patch_size": sizes.patch_size, "processor_class": "VideoLlavaProcessor", "vision_feature_select_strategy": "default"},
    )
    write_json(
        path / "preprocessor_config.json",
        {
            "crop_size": {"height": sizes.image_size, "width": sizes.image_size},
            "do_center_crop": True,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": list(CLIP_MEAN),
            "image_processor_type": "VideoLlavaImageProcessor",
            "image_std": list(CLIP_STD),
            "processor_class": "VideoLlavaProcessor",
            "resample": 3,
            "rescale_factor": 1 / 255,
            "size": {"shortest_edge": sizes.image_size},
        },
    )


register(VideoLlava())
