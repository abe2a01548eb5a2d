"""Tiny LLaVA-OneVision models (SigLIP vision tower + Qwen2 LLM) built without any download.

They have the architecture classes of the real checkpoints and go through the same
``save_pretrained`` / ``from_pretrained`` path, so every code path a GPU user runs on
``llava-hf/llava-onevision-qwen2-7b-ov-hf`` runs in the tests on CPU in seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

VIDEO_TOKEN = "<video>"
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN, VIDEO_TOKEN)

# A Qwen2-style chat template; user content may be a string or a list of {"type": "video"} /
# {"type": "text", "text": ...} parts, as in transformers' multimodal conversations.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif part['type'] == 'image' %}{{ '<image>\n' }}"
    "{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Text the tiny tokenizer's byte-level BPE is trained on, so that these words become single
# tokens; any other text still tokenizes (byte fallback).
_CORPUS_WORDS = (
    "user assistant system you are a helpful video assistant answer the question with one word "
    "what which who where when how many is are was were does do did in on at of to from during while "
    "colour color shape object moving left right up down still video audio sound tone beep beeps "
    "high low pitch rhythm fast slow loud quiet first second last frame time scene "
    "red green blue yellow white black purple orange circle square triangle star "
    "zero one two three four five six seven eight nine ten yes no true false medium say word "
    "0 1 2 3 4 5 6 7 8 9 A B C D E . , ? ! : ( ) ' \" -"
).split()


@dataclass
class TinySizes:
    """Sizes of a tiny LLaVA-OneVision. ``image_size / patch_size`` patches per side, pooled 2x2."""

    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    image_size: int = 32
    patch_size: int = 4
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 128
    vocab_size: int = 1024


def build_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer with a Qwen2-style chat template and the video/image tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Each word alone and after a space, many times, so merges are deterministic and complete.
    corpus = [" ".join(_CORPUS_WORDS)] * 4 + [w for w in _CORPUS_WORDS for _ in range(4)]
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[IMAGE_TOKEN, VIDEO_TOKEN],
        chat_template=CHAT_TEMPLATE,
        padding_side="right",
    )


def tiny_config(tokenizer, sizes: TinySizes | None = None):
    """A ``LlavaOnevisionConfig`` with a tiny SigLIP and a tiny Qwen2."""
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    sizes = sizes or TinySizes()
    vision = SiglipVisionConfig(
        hidden_size=sizes.vision_hidden,
        intermediate_size=2 * sizes.vision_hidden,
        num_hidden_layers=sizes.vision_layers,
        num_attention_heads=sizes.vision_heads,
        image_size=sizes.image_size,
        patch_size=sizes.patch_size,
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=sizes.text_hidden,
        intermediate_size=sizes.text_intermediate,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads,
        num_key_value_heads=sizes.text_kv_heads,
        max_position_embeddings=4096,
        # Wider than the usual 0.02 so that a random tiny model's logits are not all near zero and
        # LoRA alone can move them (real checkpoints have learned embeddings of a useful scale).
        initializer_range=0.1,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaOnevisionConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        tie_word_embeddings=True,
    )


def save_tiny_model(path: str | Path, sizes: TinySizes | None = None, seed: int = 0) -> Path:
    """Build a randomly initialised tiny LLaVA-OneVision and save it like a real checkpoint:
    model weights (safetensors), config, tokenizer and a preprocessor config."""
    from transformers import LlavaOnevisionForConditionalGeneration

    sizes = sizes or TinySizes()
    path = Path(path)
    tokenizer = build_tokenizer(sizes.vocab_size)
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(tiny_config(tokenizer, sizes))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    # The facts a video processor needs, in the file name real checkpoints use.
    preprocessor = {
        "size": {"height": sizes.image_size, "width": sizes.image_size},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "rescale_factor": 1 / 255,
    }
    (path / "video_preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return path
