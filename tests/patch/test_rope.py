import torch

from pave.patch.rope import RotaryEmbedding, grid_positions, rope_sections, rotate


def test_score_depends_only_on_relative_offset():
    torch.manual_seed(0)
    rope = RotaryEmbedding(12, rope_sections(12, "3d"))
    q, k = torch.randn(12), torch.randn(12)

    def score(p_q, p_k):
        rq = rope(q[None], torch.tensor([p_q], dtype=torch.float32))
        rk = rope(k[None], torch.tensor([p_k], dtype=torch.float32))
        return (rq * rk).sum()

    a = score([3.0, 1.5, 2.0], [1.0, 0.5, 4.0])
    b = score([13.0, 11.5, 7.0], [11.0, 10.5, 9.0])  # same offsets, shifted
    c = score([3.0, 1.5, 2.0], [2.0, 0.5, 4.0])  # different temporal offset
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_rotation_preserves_norm_and_is_identity_at_origin():
    rope = RotaryEmbedding(8, rope_sections(8, "temporal"))
    x = torch.randn(5, 8)
    torch.testing.assert_close(rope(x, torch.zeros(5, 1)), x)
    torch.testing.assert_close(rope(x, torch.rand(5, 1) * 50).norm(dim=-1), x.norm(dim=-1))


def test_sections_cover_head_dim():
    for head_dim in (6, 8, 64, 128):
        assert sum(rope_sections(head_dim, "3d")) * 2 == head_dim
        assert min(rope_sections(head_dim, "3d")) >= 1
    assert rope_sections(128, "3d") == (16, 24, 24)


def test_grids_share_coordinates():
    fine = grid_positions(14, 14, 14, 14)
    coarse = grid_positions(2, 2, 14, 14)
    assert coarse.tolist() == [[3.5, 3.5], [3.5, 10.5], [10.5, 3.5], [10.5, 10.5]]
    # The fine cells nearest the coarse top-left cell centre are the central cells of that quarter.
    assert fine.view(14, 14, 2)[3, 3].tolist() == [3.5, 3.5]
    # Non-square grids keep their own aspect.
    assert grid_positions(1, 3, 2, 6).tolist() == [[1.0, 1.0], [1.0, 3.0], [1.0, 5.0]]


def test_rotation_turns_each_channel_pair_by_its_axis_angle():
    torch.manual_seed(0)
    head_dim, theta = 12, 100.0
    sections = rope_sections(head_dim, "3d")  # (2, 2, 2) pairs on time, height, width
    rope = RotaryEmbedding(head_dim, sections, theta)
    positions = torch.randn(5, 3) * 4
    x = torch.randn(5, head_dim)
    half = head_dim // 2
    expected = torch.empty_like(x)
    pair = 0
    for axis, count in enumerate(sections):
        for j in range(count):
            angle = positions[:, axis] * theta ** (-j / count)
            a, b = x[:, pair], x[:, pair + half]
            expected[:, pair] = a * angle.cos() - b * angle.sin()
            expected[:, pair + half] = a * angle.sin() + b * angle.cos()
            pair += 1
    torch.testing.assert_close(rope(x, positions), expected)
    torch.testing.assert_close(rope(x.bfloat16(), positions).float(), expected, rtol=0.02, atol=0.05)


def test_rotation_gradient_is_the_inverse_rotation():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8, rope_sections(8, "3d"))
    cos, sin = rope.angles(torch.randn(5, 1, 3, dtype=torch.float64) * 4)  # broadcast over 2 heads
    x = torch.randn(5, 2, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: rotate(t, cos.double(), sin.double()), (x,))
    # Non-contiguous input (a transposed view) gives a contiguous, equal result.
    y = torch.randn(2, 5, 8).transpose(0, 1)
    out = rotate(y, cos.float(), sin.float())
    assert out.is_contiguous()
    torch.testing.assert_close(out, rotate(y.contiguous(), cos.float(), sin.float()))
