"""Qwen2.5-VL as a base family (``Qwen2_5_VLForConditionalGeneration``, 3B and 7B).

Its vision tower cuts a video into temporal patches of 2 frames x 14 x 14 pixels, runs a ViT with
window attention over them and merges every 2 x 2 neighbouring patches into one LLM token (the
merger: RMSNorm, then a 2-layer MLP). A video of T key frames at H x W pixels becomes
T/2 x H/28 x W/28 tokens, and the LLM places them with multimodal RoPE: temporal, row and column
positions from ``video_grid_thw`` (T/2, H/14, W/14), the temporal ones spaced by
``second_per_grid_ts`` seconds x ``tokens_per_second`` and only for the tokens that
``mm_token_type_ids`` marks as video (2).

The seam is the same as for the other families: ``forward`` and ``generate`` take the merged
tokens through ``mm_encoder_outputs={"video": ...}`` (one (N, C) tensor per video), beside the
grid and time facts they need for the positions; ``generate`` computes the positions of the
prompt from them and keeps the offset (``rope_deltas``) for the new tokens.

Two choices differ from Qwen's own processor, which picks a resolution per video from its
min/max pixels and samples 2 frames a second: here every frame of a batch has one square size
(:data:`DEFAULT_GRID` merged tokens a side, 448 px at 14-px patches: 256 tokens per pair of
frames) so that videos stack, and the key frames are the data layer's, their times giving the
temporal spacing. A config may set another grid as ``vision_config.pave_video_grid`` (the tiny
models do: 4 x 4 tokens, so the quickstart costs what it does on the other families).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from pave.adapters.base import TokenLayout
from pave.configs import bundled_config
from pave.methods import VisualLayout
from pave.models.families import BaseFamily, lora_targets, register
from pave.models.preprocess import CLIP_MEAN, CLIP_STD, VideoPreprocessor
from pave.models.tiny import TinySizes, TokenizerSpec, build_tokenizer, save_tokenizer, write_json
from pave.tokens import VisualTokens

# Merged tokens a side of every frame: 16 x 16 tokens per pair of frames, 448 x 448 px at the
# real 14-px patches, within Qwen's video range (128 to 768 tokens of 28 x 28 px a frame).
DEFAULT_GRID = 16
# Seconds between two token frames when the key frames' times are unknown: Qwen samples videos
# at 2 fps and merges 2 frames, and transformers' get_rope_index assumes the same 1 s.
DEFAULT_SECONDS_PER_GRID = 1.0
# Key frames per token frame (the vision config's temporal_patch_size in every Qwen2.5-VL).
TEMPORAL_PATCH = 2
# mm_token_type_ids values (transformers' processors): text, video.
TEXT_TYPE, VIDEO_TYPE = 0, 2

SYSTEM_PROMPT = "You are a helpful assistant."

# The template of the Qwen2.5-VL-Instruct checkpoints (chat_template.json, and their tokenizer's):
# content parts, each video as <|vision_start|><|video_pad|><|vision_end|>, and the default
# system message when the conversation has none.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_SPECIAL = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
)  # fmt: skip
#: Qwen2.5's special tokens as the Qwen2.5-VL checkpoints number them (151643 ... 151664; the
#: video placeholder <|video_pad|> is 151656).
QWEN25_VL_TOKENS = TokenizerSpec(
    special=_SPECIAL,
    real_ids={token: 151643 + i for i, token in enumerate(_SPECIAL)},
    eos="<|im_end|>",
    pad="<|endoftext|>",
    extra=_SPECIAL[1:14],
)


def frame_size(config) -> int:
    """Side in pixels of every frame: :data:`DEFAULT_GRID` (or the config's
    ``pave_video_grid``) merged patches."""
    vision = config.vision_config
    return getattr(vision, "pave_video_grid", DEFAULT_GRID) * vision.patch_size * vision.spatial_merge_size


def visual_grid(config) -> tuple[int, int]:
    """(h, w) tokens of a frame pair, as the model counts them from ``video_grid_thw``: patches a
    side, divided by the merge size."""
    vision = config.vision_config
    side = frame_size(config) // vision.patch_size // vision.spatial_merge_size
    return (side, side)


def grid_frames(config, frames: int) -> int:
    """T' = T / temporal_patch_size token frames of ``frames`` key frames."""
    stride = config.vision_config.temporal_patch_size
    if frames % stride:
        raise ValueError(f"Qwen2.5-VL merges {stride} key frames into one; {frames} is not a multiple")
    return frames // stride


def patchify(pixel_values_videos: torch.Tensor, patch: int, merge: int, temporal: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B * T/t * H/p * W/p, C * t * p * p), the rows of ``pixel_values_videos``
    as Qwen's video processor flattens them: videos, then token frames, merged cells row-major,
    the merge x merge patches of a cell row-major, and each patch as (channel, frame, y, x), the
    layout of the patch embedding's Conv3d kernel."""
    batch, frames, channels, height, width = pixel_values_videos.shape
    rows, cols = height // (patch * merge), width // (patch * merge)
    x = pixel_values_videos.reshape(
        batch, frames // temporal, temporal, channels, rows, merge, patch, cols, merge, patch
    )
    # (B, T', t, C, h, m, p, w, m, p) -> (B, T', h, w, m_y, m_x, C, t, p_y, p_x)
    x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    return x.reshape(-1, channels * temporal * patch * patch)


@torch.no_grad()
def encode_video(model, pixel_values_videos: torch.Tensor) -> tuple[VisualTokens, torch.Tensor]:
    """Run the frozen vision path of a ``Qwen2_5_VLForConditionalGeneration`` on a batch.

    Args:
        model: the (unwrapped) transformers model.
        pixel_values_videos: (B, T, 3, H, W), T even, H and W multiples of 28 (patch x merge).

    Returns:
        The visual tokens (B, T/2, H/28, W/28, C_v), exactly ``get_video_features``' for the same
        input (one call for the batch, as the model's forward makes it), with query features
        (B, T/2, H/28, W/28, C_vision): the merger's input -- the last block's output, before its
        RMSNorm -- averaged over the 2 x 2 patches of each token, the vision features a token
        is made from as LLaVA's are the projector's input; and ``video_grid_thw`` (B, 3).
    """
    from transformers.vision_utils import get_vision_window_index

    vision = model.config.vision_config
    patch, merge, temporal = vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size
    batch, frames, _, height, width = pixel_values_videos.shape
    if height % (patch * merge) or width % (patch * merge):
        raise ValueError(
            f"Qwen2.5-VL frames must be multiples of {patch * merge} px a side, got {height} x {width}"
        )
    t, h, w = grid_frames(model.config, frames), height // patch, width // patch
    grid_thw = torch.tensor([[t, h, w]] * batch, device=pixel_values_videos.device)
    tower = model.model.visual
    out = tower(patchify(pixel_values_videos, patch, merge, temporal).to(tower.dtype), grid_thw=grid_thw)
    # The tower's blocks see the merged cells in window order and the merger's output is put back
    # in the (t, h, w) order; the last hidden state is left in window order, so undo that here.
    window_index, _ = get_vision_window_index(grid_thw, merge, vision.window_size, patch)
    hidden = out.last_hidden_state
    cells = hidden.view(-1, merge * merge, hidden.shape[-1])[torch.argsort(window_index).to(hidden.device)]
    visual = VisualTokens(
        tokens=out.pooler_output.view(batch, t, h // merge, w // merge, -1),
        query_features=cells.mean(dim=1).view(batch, t, h // merge, w // merge, -1),
    )
    return visual, grid_thw


def seconds_per_grid(visual: VisualTokens, frames: int, batch: int) -> torch.Tensor:
    """(B,) seconds between the ``frames`` token frames the LLM gets (``second_per_grid_ts``): the
    spacing of the grid's frame times, rescaled when an adapter pooled the grid to another number
    of frames (the same span, as many pieces as frames); :data:`DEFAULT_SECONDS_PER_GRID` without
    times."""
    times = visual.frame_times
    if times is None or times.shape[1] < 2:
        return torch.full((batch,), DEFAULT_SECONDS_PER_GRID)
    spacing = (times[:, -1] - times[:, 0]).float() / (times.shape[1] - 1)
    return spacing * times.shape[1] / frames


class Qwen25VL(BaseFamily):
    """``Qwen2_5_VLForConditionalGeneration``: a windowed ViT over 2-frame 14 x 14 patches, a 2 x 2
    patch merger and a Qwen2.5 LLM with multimodal RoPE; no newline token."""

    name = "qwen2.5-vl"
    model_types = ("qwen2_5_vl",)
    model_ids = ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct")
    default_frames = 32
    system_prompt = SYSTEM_PROMPT
    newline_positions = ("no_token",)
    lora_target_modules = lora_targets("language_model")

    def model_class(self):
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration

    def visual_layout(self, config, frames: int | None = None) -> VisualLayout:
        """``frames`` key frames (default 32) -> T/2 token frames of 16 x 16 tokens (4,096 for 32
        key frames). ``frames`` of the layout are the token frames: the patch's queries, its time
        alignment and the LLM's token count all live on them, as for the other bases."""
        return VisualLayout(
            frames=grid_frames(config, frames or self.default_frames),
            grid=visual_grid(config),
            feature_dim=config.vision_config.hidden_size,
            width=config.text_config.hidden_size,
        )

    def token_layout(self, config, newline: str) -> TokenLayout:
        self.check_newline(newline)
        return TokenLayout(
            grid=visual_grid(config), newline=newline, frame_stride=config.vision_config.temporal_patch_size
        )

    def preprocessor(self, location: str | None, config):
        """The checkpoint's normalisation at :func:`frame_size` square (448 px at 14-px patches);
        its size facts (min/max pixels) are not used. Qwen's own processor picks each video's
        size from its aspect ratio and min/max pixels; one size for all lets the frames of a batch
        stack and fixes the token count the processor expands."""
        return dataclasses.replace(super().preprocessor(location, config), size=frame_size(config), crop=False)

    def default_preprocessor(self, config):
        """:func:`frame_size` square frames with CLIP's numbers, Qwen2.5-VL's."""
        return VideoPreprocessor(size=frame_size(config), mean=CLIP_MEAN, std=CLIP_STD)

    def encode_video(self, model, pixel_values_videos: torch.Tensor) -> VisualTokens:
        return encode_video(model, pixel_values_videos)[0]

    def grid_times(self, frame_times: torch.Tensor | None) -> torch.Tensor | None:
        """(B, T) -> (B, T/2): each token frame at the mean time of its key frames."""
        if frame_times is None:
            return None
        batch, frames = frame_times.shape
        if frames % TEMPORAL_PATCH:
            raise ValueError(
                f"Qwen2.5-VL merges {TEMPORAL_PATCH} key frames into one; {frames} is not a multiple"
            )
        return frame_times.reshape(batch, frames // TEMPORAL_PATCH, TEMPORAL_PATCH).mean(dim=-1)

    def llm_inputs(self, model, visual, tokens, extra, newline):
        """The video's tokens -- the grid row-major, then ``extra`` -- one (N, C_v) tensor per video,
        with ``video_grid_thw`` (B, 3) = (T', 2h', 2w') from the grid's shape (so cached and pooled
        grids get their own positions) and ``second_per_grid_ts`` (B,) from the frame times
        (:func:`seconds_per_grid`)."""
        self.check_newline(newline)
        if visual.frame_extra is not None:
            raise ValueError("Qwen2.5-VL has no per-frame tokens outside the grid (frame_extra)")
        batch, frames, rows, cols, _ = tokens.shape
        merge = model.config.vision_config.spatial_merge_size
        video = tokens.to(model.dtype).flatten(1, 3)
        if extra is not None:
            video = torch.cat([video, extra.to(video.dtype)], dim=1)
        grid_thw = torch.tensor([[frames, rows * merge, cols * merge]] * batch, device=tokens.device)
        return {
            "mm_encoder_outputs": {"video": BaseModelOutputWithPooling(pooler_output=tuple(video.unbind(0)))},
            "video_grid_thw": grid_thw,
            "second_per_grid_ts": seconds_per_grid(visual, frames, batch).to(tokens.device),
        }

    def prompt_inputs(self, config, input_ids, inputs):
        """``mm_token_type_ids``: video (2) for each video's grid tokens, text (0) elsewhere. The
        adapters' extra tokens after the grid count as text, so they continue the positions after
        the video one by one: M-RoPE has no place for them on the (t, h, w) grid."""
        is_video = input_ids == config.video_token_id
        grid_tokens = inputs["video_grid_thw"].prod(dim=-1) // config.vision_config.spatial_merge_size**2
        in_grid = is_video & (is_video.cumsum(dim=1) <= grid_tokens[:, None].to(input_ids.device))
        return {"mm_token_type_ids": torch.where(in_grid, VIDEO_TYPE, TEXT_TYPE).to(torch.int32)}

    def save_tiny(
        self,
        path: Path,
        seed: int = 0,
        real_layout: bool = False,
        sizes: TinySizes | None = None,
        video_grid: int | None = 4,
    ) -> Path:
        """A tiny Qwen2.5-VL saved with the files of ``Qwen/Qwen2.5-VL-7B-Instruct``: weights
        (safetensors), config, generation config, the tokenizer (its config holding the same
        multimodal template), ``chat_template.json`` and ``preprocessor_config.json``
        (the real keys and numbers). The vision tower keeps the real 14-px patches, 2 x 2 merging
        and 112-px windows (4 x 4 tokens); its last block attends fully, the others in windows.
        ``video_grid``: merged tokens a side of every frame (``pave_video_grid``; default 4 x 4, a
        frame pair costing what a frame does on the other tiny bases; 16 makes window attention
        reorder the patches; None: :data:`DEFAULT_GRID`). ``real_layout``: the real special-token
        ids and every config value but the widths and depths, and :data:`DEFAULT_GRID`."""
        from transformers import AutoConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        sizes = sizes or TinySizes()
        tokenizer = build_tokenizer(QWEN25_VL_TOKENS, sizes.vocab_size, real_ids=real_layout, chat_template=CHAT_TEMPLATE)
        real = AutoConfig.for_model(**bundled_config("qwen2.5-vl-7b.json")) if real_layout else None
        # Qwen's 16:24:24 split of the rotary frequencies among time, rows and columns, scaled.
        mrope = _mrope_section(sizes.text_hidden // sizes.text_heads)
        text = sizes.text_widths() | dict(
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope},
            bos_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        vision = dict(
            depth=sizes.vision_layers,
            hidden_size=sizes.vision_hidden,
            intermediate_size=2 * sizes.vision_hidden,
            num_heads=sizes.vision_heads,
            out_hidden_size=sizes.text_hidden,
            fullatt_block_indexes=[sizes.vision_layers - 1],
        )
        if real is not None:
            dropped = ("layer_types", "dtype", "transformers_version")
            text = {**{k: v for k, v in real.text_config.to_dict().items() if k not in dropped}, **text}
            vision = {**real.vision_config.to_dict(), **vision}
        else:
            text |= dict(vocab_size=len(tokenizer), max_position_embeddings=4096)
            # The real checkpoints' patching, windows and time scale.
            vision |= dict(patch_size=14, spatial_merge_size=2, temporal_patch_size=TEMPORAL_PATCH)
            vision |= dict(window_size=112, tokens_per_second=2)
            if video_grid is not None:
                vision |= dict(pave_video_grid=video_grid)
        ids = tokenizer.convert_tokens_to_ids
        config = Qwen2_5_VLConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=ids("<|image_pad|>"),
            video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"),
            vision_end_token_id=ids("<|vision_end|>"),
            tie_word_embeddings=False,
        )
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
        # As the real generation_config.json: either end token stops; no sampling settings, so
        # greedy decoding is what tests and evaluation ask for.
        model.generation_config.update(
            bos_token_id=tokenizer.pad_token_id,
            eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
            pad_token_id=tokenizer.pad_token_id,
        )
        model.save_pretrained(path)
        save_tokenizer(path, tokenizer, tokenizer_class="Qwen2Tokenizer", chat_template=CHAT_TEMPLATE)
        _save_processor_files(path, config)
        return path


def _mrope_section(head_dim: int) -> list[int]:
    """Qwen2.5-VL's split of head_dim / 2 rotary frequencies: 16, 24, 24 of 64, scaled."""
    half = head_dim // 2
    time = half // 4
    rows = (half - time) // 2
    return [time, rows, half - time - rows]


def _save_processor_files(path: Path, config) -> None:
    """The processor files of the Qwen2.5-VL checkpoints, with this model's patch sizes."""
    vision = config.vision_config
    write_json(path / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    write_json(
        path / "preprocessor_config.json",
        {
            "min_pixels": 3136,
            "max_pixels": 12845056,
            "patch_size": vision.patch_size,
            "temporal_patch_size": vision.temporal_patch_size,
            "merge_size": vision.spatial_merge_size,
            "image_mean": list(CLIP_MEAN),
            "image_std": list(CLIP_STD),
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2_5_VLProcessor",
        },
    )


register(Qwen25VL())
