"""The processor on checkpoint folders laid out like the released LLaVA-OneVision ones.

The released folders keep the multimodal chat template beside the processor and a text-only
template in the tokenizer; the prompt must come out exactly as transformers' processor renders it.
"""

import json

import pytest
import torch
from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration

from pave.models.families.llava_onevision import DEFAULT_SYSTEM_PROMPT, encode_video
from pave.models.patched import PatchedModel
from pave.models.preprocess import VideoPreprocessor
from pave.models.processor import VideoChatProcessor, processor_chat_template
from pave.models.tiny import save_tiny_model
from pave.models.towers import hidden_states

FRAMES = 2


@pytest.fixture(scope="module")
def real(real_layout_dir):
    model = PatchedModel.from_base(str(real_layout_dir))
    return model, VideoChatProcessor.from_pretrained(real_layout_dir, model)


def rendered(processor, ids):
    """The prompt as text with the expanded video placeholder folded back into one token."""
    text = processor.tokenizer.decode(ids)
    return text.replace(processor.video_token * processor.layout.num_tokens(FRAMES), processor.video_token)


def test_real_ids_and_files(real_layout_dir, real):
    model, processor = real
    names = {p.name for p in real_layout_dir.iterdir()}
    assert {"chat_template.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json"} <= names
    assert "video_preprocessor_config.json" not in names  # the released folders have none either
    tokenizer = processor.tokenizer
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"])
    assert ids == [151643, 151644, 151645, 151646, 151647]
    assert model.config.video_token_id == 151647 and model.config.text_config.vocab_size == 152000
    assert processor.preprocessor.size == 384 and processor.layout.grid == (14, 14)
    # The tokenizer's own template is the text-only one: it cannot render a video message.
    with pytest.raises(TypeError):
        tokenizer.apply_chat_template([{"role": "user", "content": [{"type": "video"}]}], tokenize=False)


def test_prompt_is_the_processor_template_with_the_default_system_message(real):
    _, processor = real
    ids = processor.prompt_ids("What colour is the circle?", FRAMES)
    assert rendered(processor, ids) == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n"
        "<|im_start|>user\n<video>\nWhat colour is the circle?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert ids.count(151647) == FRAMES * 14 * 14 + 1  # the grid and the video's newline token


def test_system_message_given_or_none(real_layout_dir, real):
    model, _ = real
    own = VideoChatProcessor.from_pretrained(real_layout_dir, model, system_prompt="Answer in one word.")
    assert rendered(own, own.prompt_ids("Q?", FRAMES)).startswith("<|im_start|>system\nAnswer in one word.<|im_end|>\n")
    none = VideoChatProcessor.from_pretrained(real_layout_dir, model, system_prompt="")
    assert rendered(none, none.prompt_ids("Q?", FRAMES)).startswith("<|im_start|>user\n<video>\nQ?")


def test_jinja_template_file_reads_the_same(tmp_path, real):
    _, processor = real
    folder = save_tiny_model(tmp_path / "jinja", template_file="chat_template.jinja")
    assert processor_chat_template(folder) == processor.chat_template


def test_a_text_only_template_is_a_clear_error(tmp_path):
    folder = save_tiny_model(tmp_path / "no-template")
    (folder / "chat_template.json").unlink()
    model = PatchedModel.from_base(str(folder))
    processor = VideoChatProcessor.from_pretrained(folder, model)
    with pytest.raises(ValueError, match="chat_template.jinja or chat_template.json"):
        processor.prompt_ids("Q?", 1)


def test_training_labels_are_the_answer_and_end_of_turn(real):
    _, processor = real
    frames = [torch.randint(0, 256, (FRAMES, 90, 160, 3), dtype=torch.uint8)]
    batch = processor(["What colour?"], ["red"], frames=frames)
    labels = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert labels == processor.tokenizer("red", add_special_tokens=False)["input_ids"] + [151645]
    assert batch["pixel_values_videos"].shape == (1, FRAMES, 3, 384, 384)


@pytest.mark.parametrize("layer, strategy", [(-1, "full"), (-2, "full"), ([-3, -1], "full"), (0, "full")])
def test_encode_video_equals_get_video_features(tiny_model_dir, layer, strategy):
    """One layer by hook, frames in chunks: the tokens of transformers' own video path."""
    llava = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    llava.config.vision_feature_layer, llava.config.vision_feature_select_strategy = layer, strategy
    pixels = torch.randn(2, 5, 3, 32, 32)
    if isinstance(layer, int):  # (the projector of this model takes one layer's width)
        visual = encode_video(llava, pixels, chunk_frames=3)
        with torch.no_grad():
            expected = llava.model.get_video_features(
                pixels, vision_feature_layer=layer, vision_feature_select_strategy=strategy, output_hidden_states=True
            )
        torch.testing.assert_close(visual.tokens.flatten(1, 3), expected.pooler_output[:, :-1], rtol=1e-5, atol=1e-6)
    tower = llava.model.vision_tower
    states = tower(pixels.flatten(0, 1), output_hidden_states=True).hidden_states
    wanted = [layer] if isinstance(layer, int) else layer
    selected = torch.cat([states[i] for i in wanted], dim=-1)
    torch.testing.assert_close(hidden_states(tower, pixels.flatten(0, 1), layer), selected, rtol=0, atol=0)


def test_out_of_range_vision_layer_is_refused(tiny_model_dir):
    llava = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="vision feature layer 7 out of range for 3 hidden states"):
        hidden_states(llava.model.vision_tower, torch.randn(1, 3, 32, 32), 7)


def test_preprocessing_fingerprint_follows_its_settings(real_layout_dir):
    facts = VideoPreprocessor.from_pretrained(str(real_layout_dir))
    assert facts == VideoPreprocessor(size=384)
    assert facts.fingerprint == VideoPreprocessor(size=384).fingerprint != VideoPreprocessor(size=336).fingerprint
    config = json.loads((real_layout_dir / "preprocessor_config.json").read_text())
    assert VideoPreprocessor.from_dict({**config, "image_mean": [0.4, 0.5, 0.5]}).fingerprint != facts.fingerprint


def test_frames_are_resized_with_antialiasing():
    """A fine checkerboard averages to grey when downscaled with antialiasing; plain bicubic
    keeps (aliased) extremes. transformers' processor antialiases."""
    board = ((torch.arange(1152)[:, None] + torch.arange(1152)[None]) % 2 * 255).to(torch.uint8)
    frames = board[None, :, :, None].expand(1, 1152, 1152, 3).numpy()
    pixels = VideoPreprocessor(size=384)(frames)
    assert pixels.abs().max() < 0.05


def test_same_pixels_as_transformers_video_processor():
    pytest.importorskip("torchvision", reason="transformers' video processors need torchvision, not installed here")
    from transformers import LlavaOnevisionVideoProcessor

    reference = LlavaOnevisionVideoProcessor()
    ours = VideoPreprocessor.from_dict(reference.to_dict())
    frames = torch.randint(0, 256, (3, 270, 480, 3), dtype=torch.uint8).numpy()
    expected = reference(videos=[frames], return_tensors="pt")["pixel_values_videos"][0]
    assert torch.equal(ours(frames), expected)


def test_default_dtype_on_cpu_is_float32(real_layout_dir):
    model = PatchedModel.from_base(str(real_layout_dir))
    assert model.llava.dtype == torch.float32
    assert AutoTokenizer.from_pretrained(real_layout_dir).eos_token_id == 151645


def test_a_dialogue_renders_as_a_multi_turn_chat_with_the_video_first(real):
    _, processor = real
    ids = processor.prompt_ids("And then?", FRAMES, history=[("Who came?", "A man."), ("Did he sit?", "No.")])
    assert rendered(processor, ids) == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n"
        "<|im_start|>user\n<video>\nWho came?<|im_end|>\n<|im_start|>assistant\nA man.<|im_end|>\n"
        "<|im_start|>user\nDid he sit?<|im_end|>\n<|im_start|>assistant\nNo.<|im_end|>\n"
        "<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_training_on_a_dialogue_supervises_every_answer_in_the_context_generation_sees(real):
    _, processor = real
    history = [("Who came?", "A man."), ("Did he sit?", "No.")]
    batch = processor(["And then?"], ["He left."], num_frames=FRAMES, histories=[history])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    encode = processor.tokenizer
    answers = [a for _, a in history] + ["He left."]
    assert [t for t in labels if t != -100] == [
        t for a in answers for t in [*encode(a, add_special_tokens=False)["input_ids"], 151645]
    ]
    # Each answer follows exactly the prompt generation would give after the same history.
    for turn in range(3):
        prompt = processor.prompt_ids([*history, ("And then?", None)][turn][0], FRAMES, history=history[:turn])
        assert ids[: len(prompt)] == prompt
        assert labels[len(prompt) - 1] == -100 and labels[len(prompt)] == ids[len(prompt)]
    assert set(labels[: len(processor.prompt_ids("Who came?", FRAMES))]) == {-100}
