"""Adapters through recipes: every method trains, and Video-LLaMA's two stages chain."""

import torch
from safetensors.torch import load_file

from pave import recipes
from pave.models.patched import PatchedModel
from pave.recipes import load_recipe
from pave.training.train import train


def recipe(tiny_model_dir, bench, out, *extra):
    return load_recipe(
        recipes.find("tiny_audio"),
        [
            f"model.base={tiny_model_dir}",
            f"data.annotations=[{bench['train']}]",
            f"data.media_root={bench['root']}",
            f"data.features={{audio: {bench['audio']}}}",
            f"train.output_dir={out}",
            f"train.visual_cache_dir={out.parent / 'visual-cache'}",
            "train.max_steps=2",
            "train.save_steps=100",
            *extra,
        ],
    )


def test_video_llama_two_stages(tiny_model_dir, synthetic_bench, tmp_path):
    qformer = "patch.config={hidden_size: 16, num_heads: 2, intermediate_size: 32, video_queries: 4, side_queries: 2}"
    stage1 = train(recipe(tiny_model_dir, synthetic_bench, tmp_path / "stage1", "patch.method=qformer", qformer, "lora.enabled=false"))
    assert not (stage1 / "adapter_model.safetensors").exists()  # the LLM stays frozen, as in Video-LLaMA
    stage2 = train(
        recipe(tiny_model_dir, synthetic_bench, tmp_path / "stage2", "patch.method=qformer", f"patch.init_from={stage1}")
    )
    first, second = load_file(stage1 / "patch.safetensors"), load_file(stage2 / "patch.safetensors")
    assert first.keys() == second.keys()
    assert any(not torch.equal(first[k], second[k]) for k in first)  # stage 2 went on training them
    model = PatchedModel.from_pretrained(stage2)
    assert model.has_lora and model.token_layout().extra == 6


def test_pooling_and_interleave_recipes(tiny_model_dir, synthetic_bench, tmp_path):
    pooled = PatchedModel.from_pretrained(
        train(recipe(tiny_model_dir, synthetic_bench, tmp_path / "pool", "patch.method=pooling", "patch.config={grid: [2, 2]}"))
    )
    assert pooled.token_layout().grid == (2, 2) and pooled.side_channels == []
    interleaved = PatchedModel.from_pretrained(
        train(recipe(tiny_model_dir, synthetic_bench, tmp_path / "interleave", "patch.method=interleave", "patch.config={}"))
    )
    side_frames = interleaved.patches["audio"].config.side_frames
    assert interleaved.token_layout().extra == side_frames > 0
