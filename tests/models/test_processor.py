"""How the processor joins the turns of a dialogue under each family's own chat template."""

import pytest

from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor

FRAMES = 2


def processor_of(tiny_base, family: str) -> VideoChatProcessor:
    base_dir = tiny_base(family)
    return VideoChatProcessor.from_pretrained(base_dir, PatchedModel.from_base(str(base_dir)))


def text_of(processor: VideoChatProcessor, ids: list[int]) -> str:
    """The ids as text, the expanded video placeholder folded back into one token."""
    text = processor.tokenizer.decode(ids)
    return text.replace(processor.video_token * processor.layout.num_tokens(FRAMES), processor.video_token)


def test_vicuna_history_ends_each_answer_with_eos_in_place_of_the_turn_separator(tiny_base):
    processor = processor_of(tiny_base, "video-llava")
    ids = processor.prompt_ids("And then?", FRAMES, history=[("Who came?", "A man.")])
    text = text_of(processor, ids)
    assert text.endswith("USER: <video>\nWho came? ASSISTANT:A man.</s>USER: And then? ASSISTANT:")


def test_an_answer_with_surrounding_spaces_is_kept_as_given(tiny_base):
    processor = processor_of(tiny_base, "llava-onevision")
    ids, labels = processor.conversation_ids([("Who came?", " A man. "), ("And then?", "He left.")], FRAMES)
    supervised = [t for t in labels if t != -100]
    eos = processor.tokenizer.eos_token_id
    assert supervised == processor.answer_ids(" A man. ") + processor.answer_ids("He left.")
    assert supervised.count(eos) == 2


def test_a_template_that_ends_answers_with_another_token_is_refused(tiny_base):
    processor = processor_of(tiny_base, "llava-onevision")
    # The tokenizer's end-of-turn token stays <|im_end|>; this template ends answers with <|endoftext|>.
    processor.chat_template = processor.chat_template.replace("<|im_end|>", "<|endoftext|>")
    assert processor.tokenizer.eos_token == "<|im_end|>"
    processor.prompt_ids("Who came?", FRAMES)  # a single turn has no answer to join
    with pytest.raises(ValueError, match="ends an answer with '<\\|endoftext\\|>'"):
        processor.prompt_ids("And then?", FRAMES, history=[("Who came?", "A man.")])


def test_a_conversation_needs_a_turn(tiny_base):
    with pytest.raises(ValueError, match="at least one turn"):
        processor_of(tiny_base, "llava-onevision").conversation_ids([], FRAMES)
