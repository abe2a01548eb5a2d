"""Tiny LLaVA-OneVision models (SigLIP vision tower + Qwen2 LLM) built without any download.

They have the architecture classes of the real checkpoints, the files of the real checkpoint
folders (the processor's multimodal chat template beside a tokenizer whose own template is
text-only, processor and image-processor configs) and go through the same ``save_pretrained`` /
``from_pretrained`` path, so every code path a GPU user runs on
``llava-hf/llava-onevision-qwen2-7b-ov-hf`` runs in the tests on CPU in seconds. A real-layout
model (``real_layout=True``) also has the real special-token ids, config values and input size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from pave.configs import bundled_config

VIDEO_TOKEN = "<video>"
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN, VIDEO_TOKEN)
# Where the real Qwen2-based checkpoints put those tokens: after 151,643 ordinary tokens.
REAL_FIRST_SPECIAL_ID = 151643

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

# The checkpoints' tokenizer keeps Qwen2's text-only template, which cannot render content parts.
TEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
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


def build_tokenizer(vocab_size: int = 1024, real_ids: bool = False):
    """A byte-level BPE tokenizer with the video/image tokens and Qwen2's text-only template.

    ``real_ids`` pads the vocabulary with unused tokens so that the special tokens get the ids of
    the real checkpoints (``<|endoftext|>`` 151643 ... ``<video>`` 151647).
    """
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
    if real_ids:
        tok = _with_real_special_ids(tok)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[IMAGE_TOKEN, VIDEO_TOKEN],
        chat_template=TEXT_CHAT_TEMPLATE,
        padding_side="right",
    )


def _with_real_special_ids(trained):
    """The same BPE with its ordinary tokens first, unused fillers up to
    :data:`REAL_FIRST_SPECIAL_ID` and the special tokens after them (the merges produce no filler)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    model = json.loads(trained.to_str())["model"]
    ordinary = sorted((i, t) for t, i in model["vocab"].items() if t not in SPECIAL_TOKENS)
    vocab = {token: new for new, (_, token) in enumerate(ordinary)}
    vocab.update({f"[unused{i}]": i for i in range(len(vocab), REAL_FIRST_SPECIAL_ID)})
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def tiny_config(tokenizer, sizes: TinySizes | None = None, real_values: bool = False):
    """A ``LlavaOnevisionConfig`` with a tiny SigLIP and a tiny Qwen2.

    ``real_values``: everything but the widths and depths as in the real 0.5B checkpoint's
    config (vocabulary size, RoPE base, norm epsilon, context length, token ids, activations)."""
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    sizes = sizes or TinySizes()
    real = bundled_config("llava-onevision-0.5b.json") if real_values else None
    widths = dict(
        hidden_size=sizes.vision_hidden,
        intermediate_size=2 * sizes.vision_hidden,
        num_hidden_layers=sizes.vision_layers,
        num_attention_heads=sizes.vision_heads,
        image_size=sizes.image_size,
        patch_size=sizes.patch_size,
    )
    vision = SiglipVisionConfig(**({**real["vision_config"], **widths} if real else widths))
    text_widths = dict(
        hidden_size=sizes.text_hidden,
        intermediate_size=sizes.text_intermediate,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads,
        num_key_value_heads=sizes.text_kv_heads,
        # Wider than the usual 0.02 so that a random tiny model's logits are not all near zero and
        # LoRA alone can move them (real checkpoints have learned embeddings of a useful scale).
        initializer_range=0.1,
        pad_token_id=tokenizer.pad_token_id,
    )
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


# A real-layout model: the real checkpoint's input size and patch grid (384 px, 27x27 -> 14x14).
REAL_LAYOUT_SIZES = TinySizes(image_size=384, patch_size=14)


def save_tiny_model(
    path: str | Path,
    sizes: TinySizes | None = None,
    seed: int = 0,
    real_layout: bool = False,
    template_file: str = "chat_template.json",
) -> Path:
    """Build a randomly initialised tiny LLaVA-OneVision and save it with the files of a real
    checkpoint: weights (safetensors), config, generation config, tokenizer (Qwen2's text-only
    template), the processor's multimodal template in ``template_file`` (``chat_template.json``
    or ``chat_template.jinja``), ``processor_config.json`` and the image processor's
    ``preprocessor_config.json``.

    ``real_layout``: also the real special-token ids and config values (:func:`tiny_config`)
    and, unless ``sizes`` says otherwise, the real input size and grid (:data:`REAL_LAYOUT_SIZES`).
    """
    from transformers import LlavaOnevisionForConditionalGeneration

    sizes = sizes or (REAL_LAYOUT_SIZES if real_layout else TinySizes())
    path = Path(path)
    tokenizer = build_tokenizer(sizes.vocab_size, real_ids=real_layout)
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(tiny_config(tokenizer, sizes, real_values=real_layout))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    _save_tokenizer(path, tokenizer)
    _save_processor_files(path, sizes, template_file)
    return path


def _save_tokenizer(path: Path, tokenizer) -> None:
    """As the llava-hf checkpoints hold it: a ``Qwen2Tokenizer`` whose own (text-only) template
    is in ``tokenizer_config.json``, not in the ``chat_template.jinja`` transformers would write."""
    tokenizer.save_pretrained(path)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.update(tokenizer_class="Qwen2Tokenizer", chat_template=TEXT_CHAT_TEMPLATE)
    _write_json(config_file, config)


def _save_processor_files(path: Path, sizes: TinySizes, template_file: str) -> None:
    """The processor files of the llava-hf checkpoints, with this model's input size."""
    if template_file == "chat_template.json":
        _write_json(path / template_file, {"chat_template": CHAT_TEMPLATE})
    elif template_file == "chat_template.jinja":
        (path / template_file).write_text(CHAT_TEMPLATE)
    else:
        raise ValueError(f"template_file must be chat_template.json or chat_template.jinja, got {template_file!r}")
    grid = sizes.image_size // sizes.patch_size
    _write_json(
        path / "processor_config.json",
        {
            "image_token": IMAGE_TOKEN,
            "num_image_tokens": grid * grid,
            "processor_class": "LlavaOnevisionProcessor",
            "video_token": VIDEO_TOKEN,
            "vision_feature_select_strategy": "full",
        },
    )
    _write_json(
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


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
