"""The FT (interleave) adapter: side tokens as extra LLM tokens."""

import json

import pytest
import torch

from pave.adapters.interleave.interleave import resample_side
from pave.models.processor import VideoChatProcessor, processor_chat_template

SIDE_FRAMES = 5


def make(harness):
    return harness.model("interleave", side_dim=12, side_frames=SIDE_FRAMES, side_channel="audio")


def test_adds_exactly_side_frames_tokens(harness):
    model = make(harness)
    assert harness.video_placeholders(model, harness.batch(model)) == [harness.base_placeholders() + SIDE_FRAMES] * 2


def test_forward_backward_trains_projector_and_lora(harness):
    grads = harness.backward(make(harness))
    assert any(n.startswith("patches.audio.projector") for n in grads)
    assert any("lora_" in n for n in grads)


def test_save_load_round_trip(harness, tmp_path):
    loaded = harness.assert_round_trip(make(harness), tmp_path / "interleave")
    record = json.loads((tmp_path / "interleave" / "patch_config.json").read_text())
    assert record["kind"] == "interleave" and record["config"]["side_frames"] == SIDE_FRAMES
    assert not any(p.requires_grad for p in loaded.parameters())


def test_batched_with_unequal_side_lengths_equals_one_by_one(harness):
    adapter = make(harness).patches["audio"]
    side = harness.side((7, 3))["audio"]
    tokens = torch.randn(2, 4, 4, 4, 64)
    both = adapter(tokens, side=side.tokens, side_mask=side.mask).extra
    for i, n in enumerate((7, 3)):
        one = adapter(tokens[i : i + 1], side=side.tokens[i : i + 1, :n]).extra
        torch.testing.assert_close(both[i : i + 1], one)


def test_resample_keeps_end_points_and_constant_signals():
    side = torch.arange(4.0)[None, :, None].expand(2, 4, 3).clone()
    side[1, 2:] = 0  # padding of a 2-frame sample
    out = resample_side(side, torch.tensor([4, 2]), 7)
    torch.testing.assert_close(out[0, :, 0], torch.linspace(0, 3, 7))
    torch.testing.assert_close(out[1, :, 0], torch.linspace(0, 1, 7))


def test_wrong_side_width_is_named(harness):
    adapter = make(harness).patches["audio"]
    with pytest.raises(ValueError, match="side_dim 12"):
        adapter(torch.randn(1, 4, 4, 4, 64), side=torch.randn(1, 3, 1, 1, 8))


def test_prompts_sized_for_the_base_are_refused(harness):
    model = make(harness)
    frames = [torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)]
    template = processor_chat_template(harness.model_dir)
    batch = VideoChatProcessor(harness.tokenizer, model.config, chat_template=template)(["what pitch?"], frames=frames)
    with pytest.raises(ValueError, match=r"video placeholders but the model gives .*token_layout\(\)"):
        model(**batch, side=harness.side((3,)))
