"""PatchedModel on a tiny LLaVA-OneVision: equality at init, training, saving, loading, stacking."""

import json

import pytest
import torch
from transformers import LlavaOnevisionForConditionalGeneration

from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor
from pave.tokens import SideInputs

FRAMES = 4


@pytest.fixture
def model(tiny_model_dir):
    return PatchedModel.from_base(str(tiny_model_dir))


@pytest.fixture
def processor(tiny_model_dir, model):
    return VideoChatProcessor.from_pretrained(tiny_model_dir, model)


def make_batch(processor, answers=("red", "two blue"), padding_side="right"):
    frames = [torch.randint(0, 256, (FRAMES, 20, 24, 3), dtype=torch.uint8) for _ in answers]
    questions = ["what colour is the circle?", "how many beeps?"][: len(answers)]
    return processor(questions, list(answers), frames=frames, padding_side=padding_side)


def audio(batch_size=2, lengths=(7, 3), dim=12):
    tokens = torch.randn(batch_size, max(lengths), 1, 1, dim)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    return {"audio": SideInputs(tokens, mask)}


def randomize_output(model, name):
    with torch.no_grad():
        model.patches[name].output_norm.weight.normal_()
        model.patches[name].output_norm.bias.normal_()


def test_new_patch_leaves_logits_exactly_as_the_base(model, processor, tiny_model_dir):
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    batch = make_batch(processor)
    base = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        expected = base(**{k: v for k, v in batch.items() if k != "labels"}).logits
        patched = model(**batch, side=audio()).logits
    assert torch.equal(patched, expected)


def test_training_lowers_loss_and_leaves_base_bit_identical(model, processor):
    model.add_lora(r=8, alpha=16, dropout=0.0)
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio", hidden_dim=32, num_heads=2))
    before = {k: v.clone() for k, v in model.llava.state_dict().items() if "lora_" not in k}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("patches.") for n in trainable)
    batch = make_batch(processor)
    visual = model.encode_video(batch.pop("pixel_values_videos"))
    side = audio()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=2e-2)
    losses = []
    for _ in range(10):
        loss = model(**batch, visual=visual, side=side).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses
    assert model.patches["audio"].output_norm.weight.abs().sum() > 0
    after = {k: v for k, v in model.llava.state_dict().items() if "lora_" not in k}
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_save_load_round_trip_and_peft_compatibility(model, processor, tiny_model_dir, tmp_path):
    model.add_lora(r=4, alpha=8)
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio", hidden_dim=16, num_heads=2))
    randomize_output(model, "audio")
    with torch.no_grad():
        for name, p in model.base.named_parameters():
            if "lora_B" in name:
                p.normal_()
    model.eval()  # LoRA dropout off
    batch = make_batch(processor)
    side = audio()
    with torch.no_grad():
        expected = model(**batch, side=side).logits
    out = model.save_pretrained(tmp_path / "patch")
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "patch.safetensors", "patch_config.json"} <= files
    assert not any(f.endswith((".bin", ".pt")) for f in files)
    record = json.loads((out / "patch_config.json").read_text())
    assert record["kind"] == "pave" and record["config"]["base_model"] == str(tiny_model_dir)

    loaded = PatchedModel.from_pretrained(out)  # base taken from the patch's record
    with torch.no_grad():
        got = loaded(**batch, side=side).logits
    torch.testing.assert_close(got, expected)
    assert not any(p.requires_grad for p in loaded.parameters())

    # peft reads the adapter on its own.
    from peft import PeftModel

    plain = PeftModel.from_pretrained(LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_model_dir), out)
    lora_keys = [k for k in plain.state_dict() if "lora_A" in k]
    assert lora_keys and all("language_model.layers" in k for k in lora_keys)


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


def test_stacked_patches_add_their_deltas(model, processor):
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"), trainable=False)
    model.add_patch("dense", model.patch_config(side_dim=8, side_channel="video", side_grid=(2, 2)))
    randomize_output(model, "audio")
    randomize_output(model, "dense")
    batch = make_batch(processor)
    visual = model.encode_video(batch["pixel_values_videos"])
    side = audio() | {"video": SideInputs(torch.randn(2, 9, 2, 2, 8))}
    with torch.no_grad():
        both, _ = model.patched_tokens(visual, side)
        model.set_active_patches(["audio"])
        only_audio, _ = model.patched_tokens(visual, side)
        model.set_active_patches(["dense"])
        only_dense, _ = model.patched_tokens(visual, side)
        with model.disable_patches():
            none, _ = model.patched_tokens(visual, side)
    torch.testing.assert_close(both - visual.tokens, (only_audio - visual.tokens) + (only_dense - visual.tokens))
    assert torch.equal(none, visual.tokens)
    assert not any(p.requires_grad for p in model.patches["audio"].parameters())
    assert all(p.requires_grad for p in model.patches["dense"].parameters())


def test_generate_batched_matches_single(model, processor):
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    randomize_output(model, "audio")
    questions = ["what colour is the circle?", "how many beeps are there in the video?"]
    frames = [torch.randint(0, 256, (FRAMES, 16, 16, 3), dtype=torch.uint8) for _ in questions]
    side = audio()
    batch = processor(questions, frames=frames, padding_side="left")
    ids = model.generate(**batch, side=side, max_new_tokens=5, do_sample=False)
    assert ids.shape[0] == 2 and 1 <= ids.shape[1] <= 5
    for i in range(2):
        one = processor(questions[i : i + 1], frames=frames[i : i + 1])
        s = SideInputs(side["audio"].tokens[i : i + 1, : int(side["audio"].mask[i].sum())])
        single = model.generate(**one, side={"audio": s}, max_new_tokens=5, do_sample=False)
        assert processor.decode(single) == processor.decode(ids[i : i + 1, : single.shape[1]])


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
