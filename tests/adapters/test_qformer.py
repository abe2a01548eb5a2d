"""The Video-LLaMA style Q-Former adapter: video and audio queries as extra LLM tokens."""

import pytest
import torch

SMALL = dict(hidden_size=32, num_heads=4, intermediate_size=64, video_queries=6, side_queries=3, max_side_frames=8)


def make(harness, **overrides):
    return harness.model("qformer", **(dict(side_dim=12, side_channel="audio") | SMALL | overrides))


def test_adds_exactly_video_and_side_queries(harness):
    model = make(harness)
    assert harness.video_placeholders(model, harness.batch(model)) == [harness.base_placeholders() + 6 + 3] * 2
    video_only = make(harness, side_dim=None)
    assert video_only.side_channels == []
    assert harness.video_placeholders(video_only, harness.batch(video_only)) == [harness.base_placeholders() + 6] * 2


def test_forward_backward_trains_both_branches(harness):
    grads = harness.backward(make(harness))
    for part in ("video.queries", "video.position", "video.qformer", "video.projection", "side.queries", "side.qformer"):
        assert any(n.startswith(f"patches.audio.{part}") for n in grads), part
    assert any("lora_" in n for n in grads)


def test_save_load_round_trip(harness, tmp_path):
    harness.assert_round_trip(make(harness), tmp_path / "qformer")


def test_padded_side_frames_are_masked(harness):
    adapter = make(harness).patches["audio"]
    side = harness.side((7, 3))["audio"]
    frames = torch.randn(2, 4, 4, 4, 32)
    tokens = torch.randn(2, 4, 4, 4, 64)
    both = adapter(tokens, query_features=frames, side=side.tokens, side_mask=side.mask).extra
    one = adapter(tokens[1:], query_features=frames[1:], side=side.tokens[1:, :3]).extra
    torch.testing.assert_close(both[1:], one)


def test_too_many_side_frames_is_explained(harness):
    adapter = make(harness).patches["audio"]
    with pytest.raises(ValueError, match="max_frames / max_side_frames"):
        adapter(torch.randn(1, 4, 4, 4, 64), query_features=torch.randn(1, 4, 4, 4, 32), side=torch.randn(1, 9, 1, 1, 12))
