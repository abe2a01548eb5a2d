"""The PLLaVA style pooling adapter: fewer visual tokens, LoRA only."""

import torch

from pave.adapters import PoolingAdapter, PoolingConfig
from pave.models.tiny import TinySizes


def test_pools_to_the_exact_token_count(harness):
    base = harness.base_placeholders()
    frames, cells = (base - 1) // 16, 16  # the tiny grid is 4 x 4
    assert base == frames * cells + 1 and TinySizes().image_size // TinySizes().patch_size // 2 == 4
    model = harness.model("pooling", grid=(2, 2))
    assert model.side_channels == []
    assert harness.video_placeholders(model, harness.batch(model)) == [frames * 4 + 1] * 2
    model = harness.model("pooling", grid=(4, 4), frames=2)
    assert harness.video_placeholders(model, harness.batch(model)) == [2 * 16 + 1] * 2
    model = harness.model("pooling", grid=(4, 4))
    assert harness.video_placeholders(model, harness.batch(model)) == [base] * 2


def test_average_pooling_of_the_grid():
    tokens = torch.arange(4 * 4, dtype=torch.float32).view(1, 1, 4, 4, 1).expand(2, 3, 4, 4, 5)
    out = PoolingAdapter(PoolingConfig(grid=(2, 2))).forward(tokens).tokens
    assert out.shape == (2, 3, 2, 2, 5)
    torch.testing.assert_close(out[0, 0, :, :, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


def test_forward_backward_trains_lora_only(harness):
    grads = harness.backward(harness.model("pooling", grid=(2, 2)))
    assert grads and all("lora_" in n for n in grads)


def test_save_load_round_trip(harness, tmp_path):
    loaded = harness.assert_round_trip(harness.model("pooling", grid=(2, 2), frames=3), tmp_path / "pooling")
    assert loaded.patches["audio"].config.grid == (2, 2) and loaded.patches["audio"].config.frames == 3
