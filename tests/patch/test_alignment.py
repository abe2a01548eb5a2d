import torch

from pave.patch.alignment import chunk_ranges, interpolate_side, time_ranges


def test_chunk_rule_examples_from_the_release():
    # 120 audio tokens on 32 key frames: 24 chunks of 4, then 8 of 3.
    start, end = chunk_ranges(torch.tensor([120, 240, 32]), 32)
    sizes = (end - start).tolist()
    assert sizes[0] == [4] * 24 + [3] * 8
    assert sizes[1] == [8] * 16 + [7] * 16
    assert sizes[2] == [1] * 32
    assert (start[:, 1:] == end[:, :-1]).all() and (start[:, 0] == 0).all()
    assert end[:, -1].tolist() == [120, 240, 32]


def test_interpolation_gives_exactly_t_frames():
    side = torch.arange(3.0).view(1, 3, 1, 1).repeat(2, 1, 1, 1)
    side[1] = 7.0
    out, lengths, times = interpolate_side(side, torch.tensor([3, 1]), 5, torch.tensor([[0.0, 1.0, 2.0]] * 2))
    assert lengths.tolist() == [5, 5]
    assert out[0, :, 0, 0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert out[1, :, 0, 0].tolist() == [7.0] * 5
    assert times[0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_interpolation_leaves_long_samples_alone():
    side = torch.randn(2, 8, 1, 4)
    out, lengths, _ = interpolate_side(side, torch.tensor([8, 2]), 4)
    torch.testing.assert_close(out[0], side[0])
    assert lengths.tolist() == [8, 4]
    torch.testing.assert_close(out[1, 3], side[1, 1])


def test_time_windows_with_padding_and_empty_cells():
    frame_times = torch.tensor([[0.0, 5.0, 10.0], [0.0, 1.0, 2.0]])
    side_timestamps = torch.tensor([[0.5, 4.0, 6.0, 9.5], [0.0, 0.2, 99.0, 99.0]])
    start, end = time_ranges(frame_times, side_timestamps, torch.tensor([4, 2]))
    assert start[0].tolist() == [0, 1, 3] and end[0].tolist() == [1, 3, 4]
    # Key frames 1 and 2 of sample 1 have no side frame near them: they take the nearest one.
    assert start[1].tolist() == [0, 1, 1] and end[1].tolist() == [2, 2, 2]
    start, end = time_ranges(frame_times, side_timestamps, torch.tensor([4, 2]), window=2.0)
    assert start[0].tolist() == [0, 1, 3] and end[0].tolist() == [1, 3, 4]
