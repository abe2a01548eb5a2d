"""PAVE's own patches in the same harness: visual and learnable queries keep the token count."""

import pytest


def make(harness, query_source):
    model = harness.model()
    config = model.patch_config(side_dim=12, side_channel="audio", hidden_dim=16, num_heads=2, query_source=query_source)
    model.add_patch("audio", config)
    return model.eval()


@pytest.mark.parametrize("query_source", ["vision", "learnable"])
def test_token_count_unchanged_training_and_round_trip(harness, tmp_path, query_source):
    model = make(harness, query_source)
    assert harness.video_placeholders(model, harness.batch(model)) == [harness.base_placeholders()] * 2
    grads = harness.backward(model)
    assert any(n.startswith("patches.audio.") for n in grads) and any("lora_" in n for n in grads)
    model.eval()
    loaded = harness.assert_round_trip(model, tmp_path / query_source)
    assert loaded.patches["audio"].config.query_source == query_source
