"""FLOPs and parameter accounting against the paper's figures (Appendix B.5, Tables 1-4, 7-10)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from pave.flops import (
    Accounting,
    ParameterCount,
    SideLayout,
    VisualLayout,
    account,
    format_count,
    format_table,
    llm_prefill_flops,
    load_base_config,
    lora_parameters,
    method_config,
    parameter_count,
    patch_flops,
    side_layout,
    visual_layout,
)
from pave.patch import PatchConfig, PavePatch

OV_05B, OV_7B = "llava-onevision-0.5b", "llava-onevision-7b"


def test_llm_prefill_matches_the_paper():
    # 6272 visual + 40 text tokens; Tables 1-3: 8.01 and 98.53 TFLOPs.
    assert account(OV_05B, "base").llm_tokens == 6312
    assert account(OV_05B, "base").flops_llm == 8_013_436_462_080
    assert account(OV_7B, "base").flops_llm == 98_534_821_819_392


def test_interleave_counts_side_tokens_as_llm_tokens():
    # Table 4, FT (interleave): 18432 3D tokens on 0.5B, 71.41 TFLOPs for the LLM.
    acc = account(OV_05B, "interleave", "3d")
    assert acc.llm_tokens == 6312 + 18432
    assert round(acc.tflops_llm, 2) == 71.41
    # The projector (1024 -> 896 -> 896) adds 1.7M parameters the paper's 35.1M leaves out.
    assert acc.params_trainable == lora_parameters(load_base_config(OV_05B).text_config) + 1_722_112


def test_llm_formula_terms():
    # One Qwen2-0.5B layer over 10 tokens, term by term as the docstring states.
    text = load_base_config(OV_05B).text_config
    n, h, kv = 10, 896, 128
    linear = 2 * n * (h * h + 2 * h * kv + h * h + 3 * h * 4864)
    per_layer = linear + 4 * n * n * h + 5 * 14 * n * n + 14 * h * n + h * n + 2 * h * n
    assert llm_prefill_flops(text, n) == 24 * per_layer


@pytest.mark.parametrize(
    "base, lora, pave",
    [(OV_05B, 35_192_832, 41_428_608), (OV_7B, 161_480_704, 170_477_056)],
)
def test_trainable_parameters_match_the_paper(base, lora, pave):
    # LoRA-only 35.2M / 161.5M and PAVE 41.4M / 170.5M (Tables 1-3, 7-10).
    assert account(base, "base").params_trainable == 0
    assert account(base, "ft").params_trainable == lora
    assert account(base, "pave", "audio").params_trainable == pave
    # The patch alone is the authors' +6.2M / +9.0M.
    assert pave - lora == {OV_05B: 6_235_776, OV_7B: 8_996_352}[base]


def test_total_parameters():
    # Built on the meta device: 0.9B and 8.03B; with LoRA the 7B model has the paper's 8.2B.
    assert account(OV_05B, "base").params_total == 893_675_552
    assert account(OV_7B, "base").params_total == 8_030_807_584
    assert format_count(account(OV_05B, "pave", "3d").params_total) == "935.1M"
    assert format_count(account(OV_7B, "pave", "3d").params_total) == "8.20B"


# Total TFLOPs per side channel in the paper: Tables 1-3 and 7-10, and Table 4 for learnable queries.
PAPER_TOTALS = [
    (OV_05B, "pave", "audio", 8.08),
    (OV_05B, "pave", "3d", 8.13),
    (OV_05B, "pave", "video", 8.08),
    (OV_05B, "pave", "exo", 8.15),
    (OV_05B, "pave-learnable", "3d", 8.13),
    (OV_7B, "pave", "audio", 98.63),
    (OV_7B, "pave", "3d", 98.68),
    (OV_7B, "pave", "video", 98.63),
    (OV_7B, "pave", "exo", 98.70),
]


@pytest.mark.parametrize("base, method, side, paper", PAPER_TOTALS)
def test_totals_within_one_percent_of_the_paper(base, method, side, paper):
    acc = account(base, method, side)
    assert acc.tflops_total == pytest.approx(paper, rel=0.01)


def test_side_channel_shapes_follow_appendix_b5():
    assert side_layout("audio").num_tokens == 120
    assert side_layout("3d").num_tokens == 18432
    assert side_layout("video").num_tokens == 960
    exo = side_layout("exo")
    assert (exo.num_tokens, exo.dim) == (25088, 1152)
    assert side_layout("audio", duration=30).frames == 30
    assert side_layout("none") is None
    with pytest.raises(ValueError, match="unknown side channel"):
        side_layout("smell")


def test_visual_tokens_of_the_bundled_bases():
    ov = visual_layout(load_base_config(OV_05B))
    assert (ov.frames, ov.grid, ov.feature_dim, ov.llm_tokens) == (32, (14, 14), 1152, 6272)
    video_llava = visual_layout(load_base_config("video-llava-7b"))
    assert (video_llava.frames, video_llava.grid, video_llava.llm_tokens) == (8, (16, 16), 8 * 257)
    assert visual_layout(load_base_config(OV_05B), frames=8).llm_tokens == 8 * 196


def test_bundled_configs_state_the_architectures():
    siglip = load_base_config(OV_05B).vision_config
    assert (siglip.hidden_size, siglip.num_hidden_layers, siglip.image_size // siglip.patch_size) == (
        1152,
        26,
        27,
    )
    small, large = load_base_config(OV_05B).text_config, load_base_config(OV_7B).text_config
    assert small.tie_word_embeddings and not large.tie_word_embeddings
    assert (large.hidden_size, large.intermediate_size, large.num_hidden_layers) == (3584, 18944, 28)
    assert (large.num_attention_heads, large.num_key_value_heads) == (28, 4)
    llama = load_base_config("video-llava-7b").text_config
    assert (llama.hidden_size, llama.num_hidden_layers, llama.num_key_value_heads) == (4096, 32, 32)


def test_qwen2_5_vl_7b_is_counted():
    # 32 key frames merged in pairs: 16 token frames of 16 x 16 at 448 px; the public 8.29B
    # parameters; its LLM has Qwen2-7B's shape, so LoRA is LLaVA-OneVision-7B's 161.5M.
    config = load_base_config("qwen2.5-vl-7b")
    visual = visual_layout(config)
    assert (visual.frames, visual.grid, visual.feature_dim, visual.width) == (16, (16, 16), 1280, 3584)
    acc = account("qwen2.5-vl-7b", "pave", "audio")
    assert acc.llm_tokens == 16 * 256 + 40 and acc.flops_llm == llm_prefill_flops(config.text_config, 4136)
    assert account("qwen2.5-vl-7b", "base").params_total == 8_292_166_656
    assert account("qwen2.5-vl-7b", "ft").params_trainable == 161_480_704 < acc.params_trainable


def test_any_config_on_disk_works(tmp_path):
    load_base_config(OV_05B).save_pretrained(tmp_path)
    from_dir = account(tmp_path, "pave", "audio")
    from_file = account(tmp_path / "config.json", "pave", "audio")
    bundled = account(OV_05B, "pave", "audio")
    for acc in (from_dir, from_file):
        assert (acc.flops_total, acc.params_total, acc.params_trainable) == (
            bundled.flops_total,
            bundled.params_total,
            bundled.params_trainable,
        )
    with pytest.raises(ValueError, match="neither a bundled base"):
        load_base_config(tmp_path / "missing")


def test_meta_count_matches_a_live_model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    live = parameter_count(AutoModelForImageTextToText.from_pretrained(tiny_model_dir))
    assert account(tiny_model_dir, "base").params_total == live.total


def test_parameter_count_of_a_live_model():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert parameter_count(model) == ParameterCount(total=23, trainable=8)
    acc = account(OV_05B, "ft").with_parameters(ParameterCount(total=100, trainable=7))
    assert (acc.params_total, acc.params_trainable, acc.flops_llm) == (
        100,
        7,
        account(OV_05B, "ft").flops_llm,
    )


def _counted_flops(patch: PavePatch, visual: VisualLayout, side: SideLayout) -> int:
    """Matrix-product FLOPs of a real forward pass, by FlopCounterMode.

    FlopCounterMode does not know the CPU kernel behind ``F.scaled_dot_product_attention``, so the
    attention runs through the patch's explicit path (``return_attention=True``): same products.
    """
    cfg = patch.config
    vis = torch.randn(1, visual.frames, *visual.grid, cfg.output_dim)
    query = torch.randn(1, visual.frames, *visual.grid, cfg.query_dim)
    side_tensor = torch.randn(1, side.frames, *side.grid, side.dim)
    patch.requires_grad_(False)  # no autograd graph (and no backward hooks in the counter)
    with FlopCounterMode(display=False) as counter:
        patch(vis, side_tensor, query_features=query, return_attention=True)
    return counter.get_total_flops()


@pytest.mark.slow
@pytest.mark.parametrize("side_channel", ["audio", "3d", "video", "exo"])
def test_patch_count_matches_flop_counter_at_paper_shapes(side_channel):
    config = load_base_config(OV_05B)
    visual, side = visual_layout(config), side_layout(side_channel)
    patch_config = method_config("pave", visual, side)
    assert _counted_flops(PavePatch(patch_config), visual, side) == patch_flops(
        patch_config, visual, side, matmul_only=True
    )


@pytest.mark.parametrize(
    "patch_kwargs, side",
    [
        ({}, SideLayout(frames=3, grid=(1, 1), dim=12)),  # fewer side frames than key frames: interpolated
        ({}, SideLayout(frames=11, grid=(2, 2), dim=12)),  # uneven windows, padded to the longest
        ({"query_source": "learnable", "query_grid": (3, 2)}, SideLayout(frames=8, grid=(2, 2), dim=12)),
        ({"value_from_key": True, "num_layers": 3}, SideLayout(frames=4, grid=(1, 1), dim=12)),
    ],
)
def test_patch_count_matches_flop_counter_on_small_shapes(patch_kwargs, side):
    visual = VisualLayout(frames=4, grid=(3, 2), feature_dim=10, width=14)
    patch_config = PatchConfig(
        side_dim=12,
        query_dim=10,
        output_dim=14,
        hidden_dim=16,
        num_heads=2,
        ffn_dim=24,
        output_mlp_dim=20,
        **patch_kwargs,
    )
    counted = _counted_flops(PavePatch(patch_config), visual, side)
    assert counted == patch_flops(patch_config, visual, side, matmul_only=True)
    assert patch_flops(patch_config, visual, side) > counted  # plus norms, softmax, activations


def test_account_rejects_mismatched_side_channels():
    with pytest.raises(ValueError, match="needs a side channel"):
        account(OV_05B, "pave")
    with pytest.raises(ValueError, match="uses no side channel"):
        account(OV_05B, "ft", "audio")
    with pytest.raises(ValueError, match="unknown method"):
        account(OV_05B, "lora")


def test_custom_patch_and_side_tokens():
    side = SideLayout(frames=64, grid=(1, 1), dim=768)
    patch = PatchConfig(side_dim=768, output_dim=896, num_layers=3)
    acc = account(OV_05B, "pave", side, patch_config=patch)
    assert acc.side_channel == "custom"
    assert acc.params_trainable == 35_192_832 + parameter_count(PavePatch(patch)).total


def test_table_and_dict():
    acc = account(OV_7B, "pave", "audio")
    table = format_table([("PAVE-7B (w/ audio)", acc), ("LLaVA-OV-7B", account(OV_7B, "base"))])
    assert "98.63" in table and "8.20B / 170.5M" in table and "8.03B / -" in table
    data = acc.to_dict()
    assert {"tflops_llm", "tflops_patch", "tflops_total", "params_total", "params_trainable"} <= set(data)
    assert Accounting(**{k: data[k] for k in Accounting.__dataclass_fields__}) == acc
