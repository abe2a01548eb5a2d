"""PatchedModel on a tiny LLaVA-OneVision: saving, loading, refusing what does not fit, newline
positions. What every base family must do is in test_families.py."""

import json

import pytest
import torch

from patched_inputs import FRAMES, audio, make_batch
from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor


@pytest.fixture
def model(tiny_model_dir):
    return PatchedModel.from_base(str(tiny_model_dir))


@pytest.fixture
def processor(tiny_model_dir, model):
    return VideoChatProcessor.from_pretrained(tiny_model_dir, model)


def test_mismatched_patch_is_refused(model, tmp_path):
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    out = model.save_pretrained(tmp_path / "patch")
    record = json.loads((out / "patch_config.json").read_text())
    record["config"]["output_dim"] = 896
    (out / "patch_config.json").write_text(json.dumps(record))
    fresh = PatchedModel(model.llava)
    with pytest.raises(ValueError, match=r"output_dim \(LLM hidden size\)=896.*needs 64"):
        fresh.load_patch(out)


def test_pickle_checkpoints_are_refused(model, tmp_path):
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    out = model.save_pretrained(tmp_path / "patch")
    (out / "patch.safetensors").unlink()
    (out / "patch.bin").write_bytes(b"not to be unpickled")
    with pytest.raises(ValueError, match="pickle"):
        PatchedModel(model.llava).load_patch(out)


def test_missing_side_channel_named(model, processor):
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    with pytest.raises(ValueError, match="needs side channel 'audio'"):
        model(**make_batch(processor))


def test_home_relative_model_paths_load_everywhere(tiny_model_dir, tmp_path, monkeypatch):
    """A recipe's `model.base: ~/models/x` reaches the weights, the tokenizer and the processor."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "tiny").symlink_to(tiny_model_dir, target_is_directory=True)
    model = PatchedModel.from_base("~/tiny")
    assert VideoChatProcessor.from_pretrained("~/tiny", model).prompt_ids("what colour?", 1)
    with pytest.raises(FileNotFoundError, match="~/absent: no such model folder"):
        PatchedModel.from_base("~/absent")


@pytest.mark.parametrize("newline", ["one_token", "grid", "frame", "no_token"])
def test_every_newline_position_has_as_many_placeholders_as_the_model_scatters(model, tiny_model_dir, newline):
    from pave.models.families.llava_onevision import video_encoder_outputs

    model.newline_position = newline
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    processor = VideoChatProcessor.from_pretrained(tiny_model_dir, model)
    batch = make_batch(processor)
    visual = model.encode_video(batch.pop("pixel_values_videos"))
    placeholders = (batch["input_ids"] == model.config.video_token_id).sum(dim=1)
    _, frames, rows, cols, _ = visual.tokens.shape
    expected = frames * rows * cols + {"one_token": 1, "grid": frames * rows, "frame": frames, "no_token": 0}[newline]
    assert placeholders.tolist() == [expected, expected]
    with torch.no_grad():
        assert torch.isfinite(model(**batch, visual=visual, side=audio()).loss)
    # Where the newline embeddings are: after every row (grid), every frame, or the video.
    sequence = video_encoder_outputs(model.llava, visual.tokens, newline=newline)["video"].pooler_output[0]
    is_newline = (sequence == model.llava.model.image_newline).all(dim=-1)
    positions = {
        "grid": [(r + 1) * (cols + 1) - 1 for r in range(frames * rows)],
        "frame": [(f + 1) * (rows * cols + 1) - 1 for f in range(frames)],
        "one_token": [frames * rows * cols],
        "no_token": [],
    }[newline]
    assert is_newline.nonzero().flatten().tolist() == positions


def test_the_newline_position_is_saved_with_the_patch(model, tmp_path):
    model.newline_position = "grid"
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    saved = model.save_pretrained(tmp_path / "grid")
    assert json.loads((saved / "patch_config.json").read_text())["newline_position"] == "grid"
    loaded = PatchedModel.from_pretrained(saved)
    assert loaded.newline_position == "grid" and loaded.token_layout().num_tokens(FRAMES) == FRAMES * 4 * 5
    other = PatchedModel.from_base(loaded.base_name)
    other.add_patch("video", other.patch_config(side_dim=12, side_channel="video"))
    with pytest.raises(ValueError, match=r"different newline positions \['grid', 'one_token'\]"):
        PatchedModel.from_pretrained([saved, other.save_pretrained(tmp_path / "one")])
