"""Tiny random base models built without any download, for tests and the quickstart.

Each base family (:mod:`pave.models.families`) builds its tiny model with the architecture
classes of the real checkpoints and the files of the real checkpoint folders (processor files,
chat templates, tokenizer), and saves it through the same ``save_pretrained`` /
``from_pretrained`` path, so every code path a GPU user runs on a real checkpoint runs in the
tests on CPU in seconds. A real-layout model (``real_layout=True``) also has the real
special-token ids, config values and input size. This module holds what the families share: a
small byte-level BPE tokenizer and the sizes.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

VIDEO_TOKEN = "<video>"
IMAGE_TOKEN = "<image>"


@dataclass(frozen=True)
class TokenizerSpec:
    """The special tokens of a family's tokenizer.

    Attributes:
        special: every special token (the first ones get ids 0, 1, ... in a tiny vocabulary).
        real_ids: the real checkpoint's id of each special token (``real_ids=True`` in
            :func:`build_tokenizer`); ordinary tokens fill the ids between, unused fillers the rest.
        eos, pad: the end-of-turn and padding tokens; bos: prepended by ``add_special_tokens``
            (LLaMA's ``<s>``), None for none.
        extra: ``additional_special_tokens`` (the image and video placeholders).
    """

    special: tuple[str, ...]
    real_ids: dict[str, int]
    eos: str
    pad: str
    bos: str | None = None
    extra: tuple[str, ...] = (IMAGE_TOKEN, VIDEO_TOKEN)


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
    """Sizes of a tiny base model: its vision tower (``image_size / patch_size`` patches per side)
    and its LLM."""

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

    def vision_widths(self) -> dict:
        """The widths, depth and input of a CLIP/SigLIP vision config."""
        return dict(
            hidden_size=self.vision_hidden,
            intermediate_size=2 * self.vision_hidden,
            num_hidden_layers=self.vision_layers,
            num_attention_heads=self.vision_heads,
            image_size=self.image_size,
            patch_size=self.patch_size,
        )

    def text_widths(self) -> dict:
        """The widths and depth of a Qwen2/LLaMA LLM config."""
        return dict(
            hidden_size=self.text_hidden,
            intermediate_size=self.text_intermediate,
            num_hidden_layers=self.text_layers,
            num_attention_heads=self.text_heads,
            num_key_value_heads=self.text_kv_heads,
            # Wider than the usual 0.02 so that a random tiny model's logits are not all near zero and
            # LoRA alone can move them (real checkpoints have learned embeddings of a useful scale).
            initializer_range=0.1,
        )


def build_tokenizer(spec: TokenizerSpec, vocab_size: int = 1024, real_ids: bool = False, chat_template: str | None = None):
    """A byte-level BPE tokenizer with ``spec``'s special tokens and the tokenizer's own chat
    template, if any.

    ``real_ids`` pads the vocabulary with unused tokens so that the special tokens get the ids of
    the real checkpoints (``spec.real_ids``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(spec.special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Each word alone and after a space, many times, so merges are deterministic and complete.
    corpus = [" ".join(_CORPUS_WORDS)] * 4 + [w for w in _CORPUS_WORDS for _ in range(4)]
    tok.train_from_iterator(corpus, trainer=trainer)
    if real_ids:
        tok = _with_real_special_ids(tok, spec)
    if spec.bos is not None:  # as LLaMA's tokenizer: <s> before every text it encodes with special tokens
        bos_id = tok.token_to_id(spec.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        additional_special_tokens=list(spec.extra),
        chat_template=chat_template,
        padding_side="right",
    )


def _with_real_special_ids(trained, spec: TokenizerSpec):
    """The same BPE with the special tokens at their real ids, the ordinary tokens in order at the
    free ids from 0 and unused fillers in the gaps (the merges produce no filler)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    model = json.loads(trained.to_str())["model"]
    ordinary = [t for _, t in sorted((i, t) for t, i in model["vocab"].items() if t not in spec.special)]
    taken = set(spec.real_ids.values())
    free = (i for i in itertools.count() if i not in taken)
    vocab = {token: next(free) for token in ordinary}
    used = taken | set(vocab.values())
    vocab |= {f"[unused{i}]": i for i in range(max(used)) if i not in used}
    vocab |= spec.real_ids
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(sorted(spec.special, key=spec.real_ids.__getitem__))
    return tok


def save_tokenizer(path: Path, tokenizer, tokenizer_class: str, chat_template: str | None) -> None:
    """As the real checkpoints hold it: the tokenizer's own template (if any) in
    ``tokenizer_config.json``, not in the ``chat_template.jinja`` transformers would write."""
    tokenizer.save_pretrained(path)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.update(tokenizer_class=tokenizer_class, chat_template=chat_template)
    if chat_template is None:
        del config["chat_template"]
    write_json(config_file, config)


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def save_tiny_model(path: str | Path, family: str = "llava-onevision", seed: int = 0, real_layout: bool = False, **options) -> Path:
    """A tiny random model of ``family`` saved like its real checkpoint
    (:meth:`BaseFamily.save_tiny <pave.models.families.BaseFamily.save_tiny>`; ``options`` are
    the family's, e.g. ``sizes``)."""
    from pave.models.families import get_family

    path = Path(path)
    return get_family(family).save_tiny(path, seed=seed, real_layout=real_layout, **options)
