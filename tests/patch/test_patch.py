"""PavePatch against a plain per-sample, per-frame reference written here."""

import math

import pytest
import torch
import torch.nn.functional as F

from pave.patch import PatchConfig, PavePatch, count_parameters
from pave.patch.rope import grid_positions


def small_config(**overrides) -> PatchConfig:
    base = dict(side_dim=12, query_dim=10, output_dim=16, hidden_dim=24, num_heads=2, ffn_dim=32, output_mlp_dim=20)
    base.update(overrides)
    return PatchConfig(**base)


def randomized(patch: PavePatch) -> PavePatch:
    """Give the zero-initialised output norm real values so the output is informative."""
    torch.manual_seed(1)
    with torch.no_grad():
        patch.output_norm.weight.normal_()
        patch.output_norm.bias.normal_()
    return patch.eval()


def reference_forward(patch, visual, side, query_features, n_side):
    """One sample (no batch dim), explicit loops: the authors' chunk rule, time-only linear
    interpolation, rotary positions at the chunk centre, softmax attention per key frame."""
    cfg = patch.config
    T, h, w, _ = visual.shape
    s_h, s_w = side.shape[1:3]
    memory = patch.input_mapping(side[:n_side].flatten(1, 2))  # (n, N_s, d)
    if n_side < T:
        flat = memory.permute(1, 2, 0)  # (N_s, d, n)
        flat = F.interpolate(flat, size=T, mode="linear", align_corners=True) if n_side > 1 else flat.expand(-1, -1, T)
        memory = flat.permute(2, 0, 1)
        n_side = T
    chunks, start = [], 0
    for i in range(T):
        size = n_side // T + (1 if i < n_side % T else 0)
        chunks.append((start, start + size))
        start += size
    assert start == n_side
    hq = patch.query_input_mapping(query_features.flatten(1, 2))  # (T, Nq, d)
    rows, cols = max(h, s_h), max(w, s_w)
    q_xy, k_xy = grid_positions(h, w, rows, cols), grid_positions(s_h, s_w, rows, cols)
    heads, hd = cfg.num_heads, cfg.head_dim
    for layer in patch.cross_attn_layers:
        outs = []
        for i, (a, b) in enumerate(chunks):
            q = layer.attn.q_linear(hq[i]).view(-1, heads, hd).transpose(0, 1)  # (H, Nq, hd)
            mem = memory[a:b].flatten(0, 1)  # (len * N_s, d)
            k = layer.attn.k_linear(mem).view(-1, heads, hd).transpose(0, 1)
            v = layer.attn.v_linear(mem).view(-1, heads, hd).transpose(0, 1)
            if patch.rope is not None:
                q_t = torch.full((q.shape[1], 1), (a + b - 1) / 2)
                k_t = torch.arange(a, b).float().repeat_interleave(s_h * s_w)[:, None]
                if patch.rope.num_axes == 1:
                    q_pos, k_pos = q_t, k_t
                else:
                    q_pos = torch.cat((q_t, q_xy), dim=-1)
                    k_pos = torch.cat((k_t, k_xy.repeat(b - a, 1)), dim=-1)
                q, k = patch.rope(q, q_pos), patch.rope(k, k_pos)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
            outs.append(att.transpose(0, 1).reshape(q.shape[1], -1))
        hq = hq + torch.stack(outs)
        hq = hq + layer.ffn(hq)
    return patch.output_norm(patch.output_mapping(hq)).view(T, h, w, -1)


CASES = {
    # name: (T, (h, w), (s_h, s_w), side lengths per sample, rope)
    "audio_ragged_not_divisible": (4, (3, 2), (1, 1), [10, 7], "temporal"),
    "upsampling_short_sides": (5, (2, 3), (2, 2), [3, 9], "3d"),
    "single_side_frame": (3, (2, 2), (1, 1), [1, 6], "temporal"),
    "grid_keys_divisible": (3, (4, 3), (2, 1), [6, 6], "3d"),
    "no_rope": (4, (2, 2), (1, 2), [5, 13], "none"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_batched_equals_reference_loop(case):
    T, (h, w), (s_h, s_w), lengths, rope = case
    torch.manual_seed(0)
    patch = randomized(PavePatch(small_config(rope=rope)))
    B, n_max = len(lengths), max(lengths)
    visual = torch.randn(B, T, h, w, 16)
    query = torch.randn(B, T, h, w, 10)
    side = torch.randn(B, n_max, s_h, s_w, 12)
    mask = torch.arange(n_max)[None] < torch.tensor(lengths)[:, None]
    with torch.no_grad():
        batched = patch(visual, side, query_features=query, side_mask=mask).delta
        for b, n in enumerate(lengths):
            expected = reference_forward(patch, visual[b], side[b], query[b], n)
            torch.testing.assert_close(batched[b], expected, atol=1e-5, rtol=1e-4)
            alone = patch(visual[b : b + 1], side[b : b + 1, :n], query_features=query[b : b + 1]).delta
            torch.testing.assert_close(batched[b], alone[0], atol=1e-5, rtol=1e-4)


def test_explicit_weights_path_matches_sdpa():
    torch.manual_seed(0)
    patch = randomized(PavePatch(small_config()))
    visual, query = torch.randn(2, 4, 2, 2, 16), torch.randn(2, 4, 2, 2, 10)
    side = torch.randn(2, 9, 2, 2, 12)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    with torch.no_grad():
        fast = patch(visual, side, query_features=query, side_mask=mask)
        slow = patch(visual, side, query_features=query, side_mask=mask, return_attention=True)
    torch.testing.assert_close(fast.delta, slow.delta, atol=1e-5, rtol=1e-4)
    weights = slow.attention.weights[0]  # (B, T, H, Nq, L * N_s)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    # Slots outside a frame's window carry no weight.
    slots_valid = slow.attention.window.valid.repeat_interleave(4, dim=-1)  # (B, T, L * N_s)
    assert (weights.masked_select(~slots_valid[:, :, None, None, :].expand_as(weights)) == 0).all()


@pytest.mark.parametrize("rope", ["3d", "temporal", "none"])
def test_side_tokens_only_reach_their_window(rope):
    """Perturbing side frames outside key frame i's chunk leaves frame i unchanged; inside changes it."""
    torch.manual_seed(0)
    patch = randomized(PavePatch(small_config(rope=rope)))
    T, n = 4, 10  # chunks: [0, 3), [3, 6), [6, 8), [8, 10)
    visual, query = torch.randn(1, T, 2, 2, 16), torch.randn(1, T, 2, 2, 10)
    side = torch.randn(1, n, 1, 1, 12)
    with torch.no_grad():
        base = patch(visual, side, query_features=query).delta
        outside = side.clone()
        outside[:, [0, 1, 2, 6, 7, 8, 9]] += 5.0
        moved = patch(visual, outside, query_features=query).delta
        inside = side.clone()
        inside[:, 4] += 5.0
        moved_inside = patch(visual, inside, query_features=query).delta
    torch.testing.assert_close(moved[:, 1], base[:, 1])
    assert not torch.allclose(moved[:, 0], base[:, 0])
    assert not torch.allclose(moved_inside[:, 1], base[:, 1])
    torch.testing.assert_close(moved_inside[:, [0, 2, 3]], base[:, [0, 2, 3]])


def test_time_alignment_uses_nearest_key_frame():
    torch.manual_seed(0)
    patch = randomized(PavePatch(small_config(alignment="time", rope="temporal")))
    frame_times = torch.tensor([[0.0, 10.0, 20.0]])
    side_timestamps = torch.tensor([[0.0, 1.0, 2.0, 9.0, 11.0, 30.0]])
    visual, query = torch.randn(1, 3, 2, 2, 16), torch.randn(1, 3, 2, 2, 10)
    side = torch.randn(1, 6, 1, 1, 12)
    kwargs = dict(query_features=query, frame_times=frame_times, side_timestamps=side_timestamps)
    with torch.no_grad():
        out = patch(visual, side, return_attention=True, **kwargs)
        window = out.attention.window
        picked = [window.frames[0, i][window.valid[0, i]].tolist() for i in range(3)]
        assert picked == [[0, 1, 2], [3, 4], [5]]
        changed = side.clone()
        changed[:, 5] += 3.0  # only the last key frame sees side frame 5
        moved = patch(visual, changed, **kwargs).delta
    torch.testing.assert_close(moved[:, :2], out.delta[:, :2])


def test_time_alignment_requires_timestamps():
    patch = PavePatch(small_config(alignment="time"))
    with pytest.raises(ValueError, match="frame_times"):
        patch(
            torch.randn(1, 2, 2, 2, 16),
            torch.randn(1, 4, 1, 1, 12),
            query_features=torch.randn(1, 2, 2, 2, 10),
        )


def test_new_patch_is_exactly_zero_and_trainable():
    torch.manual_seed(0)
    patch = PavePatch(small_config())
    visual, query, side = (
        torch.randn(2, 3, 2, 2, 16),
        torch.randn(2, 3, 2, 2, 10),
        torch.randn(2, 5, 1, 1, 12),
    )
    out = patch(visual, side, query_features=query)
    assert out.delta.shape == visual.shape
    assert torch.count_nonzero(out.delta) == 0
    target = torch.randn_like(out.delta)  # a loss whose gradient at the zero delta is not zero
    (out.delta * target).sum().backward()
    # The zero gain blocks gradients to everything but the norm itself at step 0 ...
    norm = {"output_norm.weight", "output_norm.bias"}
    for name, param in patch.named_parameters():
        nonzero = param.grad is not None and bool(param.grad.abs().sum() > 0)
        assert nonzero == (name in norm), name
    # ... and one step on the norm opens the path to every other parameter.
    torch.optim.SGD(patch.parameters(), lr=0.1).step()
    patch.zero_grad()
    (patch(visual, side, query_features=query).delta * target).sum().backward()
    assert all(param.grad.abs().sum() > 0 for name, param in patch.named_parameters()), "a parameter gets no gradient"


def test_learnable_and_projected_queries():
    side = torch.randn(2, 6, 1, 1, 12)
    visual = torch.randn(2, 3, 2, 2, 16)
    learn = randomized(PavePatch(small_config(query_source="learnable", query_grid=(2, 2))))
    assert learn(visual, side).delta.shape == visual.shape
    assert not hasattr(learn, "query_input_mapping")
    with pytest.raises(ValueError, match="grid"):
        learn(torch.randn(2, 3, 3, 2, 16), side)
    projected = randomized(PavePatch(small_config(query_source="projected", query_dim=16)))
    assert projected(visual, side).delta.shape == visual.shape


def test_value_from_key_matches_release_quirk():
    patch = randomized(PavePatch(small_config(value_from_key=True)))
    visual, query, side = (
        torch.randn(1, 2, 2, 2, 16),
        torch.randn(1, 2, 2, 2, 10),
        torch.randn(1, 4, 1, 1, 12),
    )
    with torch.no_grad():
        before = patch(visual, side, query_features=query).delta
        for layer in patch.cross_attn_layers:
            layer.attn.v_linear.weight.normal_()
        after = patch(visual, side, query_features=query).delta
    torch.testing.assert_close(before, after)


def test_bad_inputs_have_clear_errors():
    patch = PavePatch(small_config())
    visual, query = torch.randn(2, 3, 2, 2, 16), torch.randn(2, 3, 2, 2, 10)
    with pytest.raises(ValueError, match="side_dim=12"):
        patch(visual, torch.randn(2, 4, 1, 1, 7), query_features=query)
    with pytest.raises(ValueError, match="query_features"):
        patch(visual, torch.randn(2, 4, 1, 1, 12))
    with pytest.raises(ValueError, match="prefix"):
        patch(
            visual,
            torch.randn(2, 4, 1, 1, 12),
            query_features=query,
            side_mask=torch.tensor([[1, 0, 1, 1]] * 2),
        )
    with pytest.raises(ValueError, match="no side frames"):
        patch(visual, torch.randn(2, 4, 1, 1, 12), query_features=query, side_mask=torch.zeros(2, 4))


def test_paper_configuration_parameter_count():
    # The release's count (+6.2M on 0.5B, +9.0M on 7B): ours has the same parameters.
    assert count_parameters(PavePatch(PatchConfig(output_dim=896))) == 6_235_776
    assert count_parameters(PavePatch(PatchConfig(output_dim=3584))) == 8_996_352


def _saved_bytes(patch, *args, **kwargs) -> tuple[torch.Tensor, int]:
    """The delta of ``patch(*args, **kwargs)`` and the bytes of the tensors autograd keeps for backward."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = patch(*args, **kwargs).delta
    return out, total


def test_recompute_gives_the_same_gradients_from_far_fewer_saved_tensors():
    torch.manual_seed(0)
    plain = randomized(PavePatch(small_config(dropout=0.1))).train()
    recomputing = PavePatch(small_config(dropout=0.1, recompute=True)).train()
    recomputing.load_state_dict(plain.state_dict())
    # 20 key frames: the output MLP is recomputed in pieces of 8, 8 and 4 frames.
    visual, query, side = (
        torch.randn(2, 20, 3, 3, 16),
        torch.randn(2, 20, 3, 3, 10),
        torch.randn(2, 30, 2, 2, 12),
    )
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 25:] = False
    outputs, saved = [], []
    for patch in (plain, recomputing):
        torch.manual_seed(3)  # the same dropout masks, which recomputation replays
        out, size = _saved_bytes(patch, visual, side, query_features=query, side_mask=mask)
        out.square().sum().backward()
        outputs.append(out)
        saved.append(size)
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-6, rtol=1e-5)
    grads = dict(recomputing.named_parameters())
    for name, param in plain.named_parameters():
        torch.testing.assert_close(grads[name].grad, param.grad, atol=1e-5, rtol=1e-4)
    assert saved[1] < saved[0] / 4, saved
    # Outside training nothing is recomputed.
    evaluated = [
        _saved_bytes(patch.eval(), visual, side, query_features=query, side_mask=mask)[1]
        for patch in (plain, recomputing)
    ]
    assert evaluated[0] == evaluated[1]
