"""What every base family must do, on a tiny model of its transformers classes saved like its
real checkpoint: a new patch leaves the base's logits bit for bit, training moves only the patch
and LoRA, a saved patch loads back to the same logits (and peft reads its adapter), batched
generation equals one-by-one, stacked patches add their deltas, and the prompt holds as many
video placeholders as the model scatters."""

import json

import pytest
import torch

from patched_inputs import FRAMES, audio, make_batch, randomize_output
from pave.flops import account
from pave.models.families import get_family
from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor
from pave.tokens import SideInputs

FAMILIES = ["llava-onevision", "video-llava", "qwen2.5-vl"]
# Bases whose own forward takes the processor's pixel_values_videos as they are (Qwen2.5-VL's takes
# them flattened into patches, with their grid: tests/models/families/test_qwen2_5_vl.py compares it).
SAME_PIXELS = ["llava-onevision", "video-llava"]


@pytest.fixture(params=FAMILIES)
def base_dir(request, tiny_base):
    return tiny_base(request.param)


@pytest.fixture
def model(base_dir):
    return PatchedModel.from_base(str(base_dir))


@pytest.fixture
def processor(base_dir, model):
    return VideoChatProcessor.from_pretrained(base_dir, model)


def plain_model(model, base_dir):
    """The base model as transformers alone loads it."""
    return model.family.model_class().from_pretrained(base_dir).eval()


@pytest.mark.parametrize("family", SAME_PIXELS)
def test_a_new_patch_leaves_the_logits_exactly_as_the_base(family, tiny_base):
    base_dir = tiny_base(family)
    model = PatchedModel.from_base(str(base_dir))
    processor = VideoChatProcessor.from_pretrained(base_dir, model)
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    batch = make_batch(processor)
    with torch.no_grad():
        expected = plain_model(model, base_dir)(**{k: v for k, v in batch.items() if k != "labels"}).logits
        patched = model(**batch, side=audio()).logits
    assert torch.equal(patched, expected)


def test_training_lowers_the_loss_and_leaves_the_base_bit_identical(model, processor):
    model.add_lora(r=8, alpha=16, dropout=0.0)
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio", hidden_dim=32, num_heads=2))
    before = {k: v.clone() for k, v in model.llava.state_dict().items() if "lora_" not in k}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("patches.") for n in trainable)
    assert all("language_model.layers" in n for n in trainable if "lora_" in n)  # not the vision tower
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


def test_a_saved_patch_loads_back_to_the_same_logits_and_peft_reads_its_adapter(model, processor, base_dir, tmp_path):
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
    assert record["kind"] == "pave" and record["config"]["base_model"] == str(base_dir)

    loaded = PatchedModel.from_pretrained(out)  # base taken from the patch's record
    with torch.no_grad():
        got = loaded(**batch, side=side).logits
    torch.testing.assert_close(got, expected)
    assert not any(p.requires_grad for p in loaded.parameters())

    from peft import PeftModel

    plain = PeftModel.from_pretrained(plain_model(model, base_dir), out)
    lora_keys = [k for k in plain.state_dict() if "lora_A" in k]
    assert lora_keys and all("language_model.layers" in k for k in lora_keys)


def test_a_dialogue_supervises_every_answer_in_the_context_generation_sees(processor):
    history = [("Who came?", "A man."), ("Did he sit?", "No.")]
    batch = processor(["And then?"], ["He left."], num_frames=FRAMES, histories=[history])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    tokenizer = processor.tokenizer
    answers = [a for _, a in history] + ["He left."]
    expected = [t for a in answers for t in [*tokenizer(a, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]]
    assert [t for t in labels if t != -100] == expected
    # Each answer follows exactly the prompt generation gives after the same history.
    questions = [q for q, _ in history] + ["And then?"]
    for turn, question in enumerate(questions):
        prompt = processor.prompt_ids(question, FRAMES, history=history[:turn])
        assert ids[: len(prompt)] == prompt
        assert labels[len(prompt) - 1] == -100 and labels[len(prompt)] == ids[len(prompt)] != -100
        assert prompt.count(processor.config.video_token_id) == processor.layout.num_tokens(FRAMES)


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


def test_batched_generation_matches_one_by_one(model, processor):
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


@pytest.mark.parametrize("family", FAMILIES)
def test_a_real_layout_prompt_holds_as_many_placeholders_as_the_model_scatters(family, tmp_path):
    """The real special-token ids, config values and input size of the family's checkpoint."""
    from pave.models.tiny import save_tiny_model

    folder = save_tiny_model(tmp_path / family, family=family, real_layout=True)
    model = PatchedModel.from_base(str(folder))
    processor = VideoChatProcessor.from_pretrained(folder, model)
    frames = torch.randint(0, 256, (FRAMES, 30, 40, 3), dtype=torch.uint8)
    batch = processor(["what colour?"], ["red"], frames=[frames])
    visual = model.encode_video(batch["pixel_values_videos"])
    placeholders = int((batch["input_ids"] == model.config.video_token_id).sum())
    layout = model.family.token_layout(model.config, model.newline_position)
    assert placeholders == layout.num_tokens(FRAMES)
    assert visual.tokens.shape[1:4] == (layout.grid_frames(FRAMES), *layout.grid)
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


@pytest.mark.parametrize("family", FAMILIES)
def test_flops_count_the_family_from_its_config_alone(family, tiny_base):
    """A tiny model's config counts as its family says: the LLM sees the layout's tokens."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_base(family))
    found = get_family(family)
    visual = found.visual_layout(config)
    base, pave = account(config, "base"), account(config, "pave", "audio")
    assert base.llm_tokens == visual.llm_tokens + 40 == pave.llm_tokens
    layout = found.token_layout(config, found.newline_positions[0])
    assert visual.frames == layout.grid_frames(found.default_frames) and pave.flops_patch > 0
