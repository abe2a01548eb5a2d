"""pave.viz: reducing a patch's attention to one key frame's window, and the heatmap PNGs."""

import numpy as np
import pytest
import torch
from PIL import Image

from pave.patch import PatchConfig, PavePatch
from pave.patch.attention import WindowIndex
from pave.patch.patch import PatchAttention
from pave.viz import frame_attention, save_heatmap, slot_times, to_real_frames, window_attention

GRID = (2, 3)  # visual-token grid (h, w)


def hand_made(side_grid=(1, 1)):
    """2 layers, B=1, T=2 key frames, H=2 heads, 6 queries, windows of up to 2 side frames."""
    n_s = side_grid[0] * side_grid[1]
    window = WindowIndex(
        frames=torch.tensor([[[0, 1], [2, 2]]]), valid=torch.tensor([[[True, True], [True, False]]])
    )
    layers = []
    for seed in range(2):
        scores = torch.randn(1, 2, 2, 6, 2 * n_s, generator=torch.Generator().manual_seed(seed))
        mask = window.valid[..., None].expand(-1, -1, -1, n_s).flatten(2)[:, :, None, None]
        layers.append(scores.masked_fill(~mask, float("-inf")).softmax(-1))
    return PatchAttention(layers, window, side_grid)


def test_window_attention_averages_layers_heads_and_queries():
    attention = hand_made(side_grid=(2, 2))
    full = window_attention(attention, 0, GRID)
    expected = torch.stack(attention.weights)[:, 0, 0].mean((0, 1, 2)).view(2, 2, 2)
    np.testing.assert_allclose(full.weights, expected.numpy(), rtol=1e-6)
    assert full.weights.sum() == pytest.approx(1.0) and not full.temporal
    assert full.frames.tolist() == [0, 1] and full.timestamps is None

    picked = window_attention(attention, 0, GRID, queries=[(1, 2), 0], layer=1, head=0)
    expected = attention.weights[1][0, 0, 0, [5, 0]].mean(0).view(2, 2, 2)
    np.testing.assert_allclose(picked.weights, expected.numpy(), rtol=1e-6)
    assert picked.queries.tolist() == [5, 0]


def test_padded_window_slots_are_dropped():
    window = window_attention(hand_made(), 1, GRID, side_timestamps=torch.tensor([0.5, 1.5, 2.5]))
    assert window.frames.tolist() == [2] and window.temporal
    assert window.weights.shape == (1, 1, 1) and window.weights.sum() == pytest.approx(1.0)
    assert window.timestamps.tolist() == [2.5]


def test_bad_queries_and_frames_are_refused():
    attention = hand_made()
    with pytest.raises(ValueError, match="2x3 grid"):
        window_attention(attention, 0, GRID, queries=[(2, 0)])
    with pytest.raises(ValueError, match="key_frame"):
        window_attention(attention, 2, GRID)


def test_slot_times_follow_interpolation_of_short_side_channels():
    times = np.array([1.0, 3.0, 5.0])
    # 3 side frames stretched over 5 key frames: slot j sits at source position j / 2.
    assert slot_times(np.arange(5), times, num_key_frames=5).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert slot_times(np.array([2, 0]), times, num_key_frames=2).tolist() == [5.0, 1.0]


def test_frame_attention_is_a_band_from_a_real_patch():
    config = PatchConfig(
        side_dim=8, query_dim=6, output_dim=10, hidden_dim=16, num_heads=2, ffn_dim=16, rope="temporal"
    )
    out = PavePatch(config)(
        torch.randn(1, 4, *GRID, 10),
        torch.randn(1, 8, 1, 1, 8),
        query_features=torch.randn(1, 4, *GRID, 6),
        return_attention=True,
    )
    matrix = frame_attention(out.attention, GRID)
    assert matrix.shape == (4, 8)
    np.testing.assert_allclose(matrix.sum(1), 1.0, rtol=1e-5)
    for t in range(4):  # 8 side frames over 4 key frames: chunks of 2, in order
        assert np.flatnonzero(matrix[t]).tolist() == [2 * t, 2 * t + 1]


@pytest.mark.parametrize("side_grid", [(1, 1), (2, 2)])
def test_heatmap_png_has_the_requested_size(tmp_path, side_grid):
    attention = hand_made(side_grid)
    window = window_attention(attention, 0, GRID, queries=[4], side_timestamps=np.array([0.0, 0.5, 1.0]))
    key = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    sides = [np.full((40, 40, 3), 90 * i, dtype=np.uint8) for i in range(2)]
    path = save_heatmap(
        tmp_path / "out" / "map.png",
        window,
        key_image=key,
        side_images=None if side_grid == (1, 1) else sides,
        matrix=frame_attention(attention, GRID) if side_grid == (1, 1) else None,
        size=(900, 360),
    )
    image = Image.open(path)
    assert image.format == "PNG" and image.size == (900, 360)
    assert len(set(np.asarray(image.convert("L")).ravel().tolist())) > 20  # something was drawn


def test_interpolated_frames_are_mapped_back_to_the_real_ones():
    # 3 real frames stretched over 5 key frames: frame j sits at source position j / 2.
    frames, weights = to_real_frames(np.array([1, 2]), np.array([[[0.6]], [[0.4]]]), num_side=3, num_key_frames=5)
    assert frames.tolist() == [0, 1]
    np.testing.assert_allclose(weights.ravel(), [0.3, 0.7])  # 0.6 split half-half, 0.4 all on frame 1


def test_a_short_side_channel_shows_its_real_frames_not_a_diagonal():
    """2 s of audio (2 tokens) read by 4 key frames: the patch sees 4 interpolated frames, one per
    window, so the raw matrix is a trivial diagonal; mapped back it spreads over the 2 real ones."""
    config = PatchConfig(side_dim=8, query_dim=6, output_dim=10, hidden_dim=16, num_heads=2, ffn_dim=16, rope="temporal")
    out = PavePatch(config)(
        torch.randn(1, 4, *GRID, 10), torch.randn(1, 2, 1, 1, 8), query_features=torch.randn(1, 4, *GRID, 6), return_attention=True
    )
    times = torch.tensor([0.5, 1.5])
    raw = frame_attention(out.attention, GRID)
    assert raw.shape == (4, 4) and np.allclose(raw, np.eye(4), atol=1e-6)
    real = frame_attention(out.attention, GRID, side_timestamps=times)
    assert real.shape == (4, 2)
    np.testing.assert_allclose(real.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(real[:, 0], [1, 2 / 3, 1 / 3, 0], atol=1e-6)  # the interpolation's own shares
    window = window_attention(out.attention, 1, GRID, side_timestamps=times)
    assert window.interpolated == (2, 4) and window.timestamps.tolist() == [0.5, 1.5]
