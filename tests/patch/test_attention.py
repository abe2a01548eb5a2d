"""WindowIndex: the view it takes for tiled windows equals the indexed gather."""

import pytest
import torch

from pave.patch.alignment import chunk_ranges
from pave.patch.attention import WindowIndex, aligned_attention


@pytest.mark.parametrize(
    "lengths, frames, tiled, full",
    [
        ([6, 6], 3, True, True),  # every window two frames, back to back
        ([8, 6], 3, False, False),  # ragged: 3, 3, 2 and 2, 2, 2 frames
        ([3, 3], 3, True, True),  # one side frame per key frame (3D frames)
        ([7, 7], 3, False, False),  # 3, 2, 2: not one width
    ],
)
def test_tiled_windows_are_a_view_of_the_same_frames(lengths, frames, tiled, full):
    lengths = torch.tensor(lengths)
    start, end = chunk_ranges(lengths, frames)
    window = WindowIndex.from_ranges(start, end, int(lengths.max()))
    assert (window.tiled, window.full) == (tiled, full)
    x = torch.randn(len(lengths), int(lengths.max()), 2, 5)
    indexed = WindowIndex(window.frames, window.valid)
    torch.testing.assert_close(window.gather(x), indexed.gather(x), rtol=0, atol=0)
    if tiled:
        assert window.gather(x).data_ptr() == x.data_ptr()


def test_tiled_view_ignores_trailing_padding_frames():
    # Two samples of 4 side frames padded to 5: the windows tile the first 4.
    start, end = chunk_ranges(torch.tensor([4, 4]), 2)
    window = WindowIndex.from_ranges(start, end, 5)
    assert window.tiled
    x = torch.randn(2, 5, 1, 3)
    torch.testing.assert_close(window.gather(x), x[:, :4].unflatten(1, (2, 2)))


def test_values_from_keys_are_gathered_once_and_match_separate_values():
    torch.manual_seed(0)
    start, end = chunk_ranges(torch.tensor([7, 5]), 3)
    window = WindowIndex.from_ranges(start, end, 7)
    q, k = torch.randn(2, 3, 4, 2, 6), torch.randn(2, 7, 3, 2, 6)
    shared, _ = aligned_attention(q, k, k, window)
    separate, _ = aligned_attention(q, k, k.clone(), window)
    explicit, _ = aligned_attention(q, k, k, window, return_weights=True)
    torch.testing.assert_close(shared, separate)
    torch.testing.assert_close(shared, explicit, atol=1e-6, rtol=1e-5)
