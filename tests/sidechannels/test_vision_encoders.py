"""Encoders built on the base model's vision tower, on the tiny LLaVA-OneVision."""

import numpy as np
import pytest
import torch

from pave.data.media import sample_frames, write_video
from pave.sidechannels import get_encoder
from pave.sidechannels.vision import VisionTower, pool_grid


def frames(n, seed, side=32):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tower(tiny_model_dir):
    return VisionTower.from_pretrained(str(tiny_model_dir), batch_size=3)


def test_tower_features_are_the_base_models_own(tiny_model_dir, tower):
    from transformers import LlavaOnevisionForConditionalGeneration

    model = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    images = frames(5, 0)
    pixels = tower.preprocess(images)
    with torch.no_grad():
        expected = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1]
    got = tower.encode(images)  # in batches of 3
    assert got.shape == (5, 8, 8, 32) and tower.grid() == (8, 8)
    torch.testing.assert_close(got.flatten(1, 2), expected)


def test_video_llavas_video_tower_encodes_and_qwens_tower_is_refused(tiny_base):
    """Video-LLaVA's CLIP video tower, at its feature layer without the CLS token; Qwen2.5-VL's
    tower is not a CLIP/SigLIP patch grid, so the built-in encoders say so."""
    from transformers import VideoLlavaForConditionalGeneration

    folder = tiny_base("video-llava")
    tower = VisionTower.from_pretrained(str(folder))
    model = VideoLlavaForConditionalGeneration.from_pretrained(folder).eval()
    images = frames(2, 1, side=40)
    with torch.no_grad():
        hidden = model.model.video_tower(tower.preprocess(images), output_hidden_states=True).hidden_states
    torch.testing.assert_close(tower.encode(images).flatten(1, 2), hidden[model.config.vision_feature_layer][:, 1:])
    with pytest.raises(ValueError, match="run CLIP or SigLIP towers .* not 'qwen2_5_vl_vision'"):
        VisionTower.from_pretrained(str(tiny_base("qwen2.5-vl")))


def test_pool_grid_modes():
    x = torch.arange(16.0).view(1, 4, 4, 1)
    assert pool_grid(x, (2, 2))[0, :, :, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert pool_grid(x, (2, 3), mode="bilinear").shape == (1, 2, 3, 1)


def test_dense_video_encoder(tiny_model_dir, tmp_path):
    path = write_video(tmp_path / "v.mp4", frames(25, 1), 10)
    encoder = get_encoder("video", model=str(tiny_model_dir), batch_size=2)
    channel = encoder.encode(path)
    assert channel.tokens.shape == (5, 2, 2, encoder.dim) and channel.kind == "video"
    torch.testing.assert_close(channel.timestamps, torch.arange(5) / 2.0)


def test_multiview_is_time_major_view_fastest(tiny_model_dir, tmp_path, tower):
    views = [write_video(tmp_path / f"cam0{v}.mp4", frames(20, 10 + v), 10) for v in range(3)]
    encoder = get_encoder("exo", model=str(tiny_model_dir), num_frames=4)
    channel = encoder.encode(tmp_path)  # a folder of views, in name order
    assert channel.tokens.shape == (4 * 3, 4, 4, 32)  # 8x8 patches pooled like LLaVA-OV: 4x4
    for v, path in enumerate(views):
        sampled = sample_frames(path, 4)
        alone = pool_grid(tower.encode(sampled.frames), (4, 4), mode="bilinear")
        torch.testing.assert_close(channel.tokens[v::3], alone)
        torch.testing.assert_close(channel.timestamps[v::3], torch.from_numpy(sampled.timestamps).float())


def test_standalone_vision_checkpoint(tmp_path):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=7,
    )
    SiglipVisionModel(config).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text('{"size": {"height": 28, "width": 28}}')
    tower = VisionTower.from_pretrained(str(tmp_path))
    assert tower.encode(frames(2, 3)).shape == (2, 4, 4, 16)


@pytest.mark.parametrize(
    "kind, backend, message", [("video", "languagebind", "transformers<5"), ("3d", "llava3d", "not on PyPI")]
)
def test_unavailable_backends_say_why(kind, backend, message):
    with pytest.raises(ImportError, match=message):
        get_encoder(kind, backend, model="x")
