"""Qwen2.5-VL as a base: a tiny random Qwen2_5_VLForConditionalGeneration saved and reloaded like
the real checkpoint, against transformers' own paths (what every family must do besides is in
tests/models/test_families.py, which runs on a 4 x 4 grid; this file keeps the 448-px one)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration
from transformers.utils import is_torchvision_available

from patched_inputs import FRAMES, audio, make_batch, randomize_output
from pave.batching.collator import QACollator
from pave.models.families.qwen2_5_vl import CHAT_TEMPLATE, SYSTEM_PROMPT, encode_video, patchify
from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor
from pave.models.tiny import save_tiny_model
from pave.tokens import SideInputs

TOKENS = FRAMES // 2 * 16 * 16  # 2 key frames a token frame of 16 x 16 tokens
SIZE = 448


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """At the default 448 px (16 x 16 tokens a frame pair), so window attention reorders patches."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-qwen"), family="qwen2.5-vl", video_grid=None)


@pytest.fixture(scope="module")
def base(tiny_dir):
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_dir).eval()


@pytest.fixture
def model(tiny_dir):
    return PatchedModel.from_base(str(tiny_dir))


@pytest.fixture
def processor(tiny_dir, model):
    return VideoChatProcessor.from_pretrained(tiny_dir, model)


def test_tokens_are_get_video_features(base):
    pixels = torch.randn(2, FRAMES, 3, SIZE, SIZE)  # resized and normalised frames
    visual, grid_thw = encode_video(base, pixels)
    assert grid_thw.tolist() == [[2, 32, 32]] * 2
    with torch.no_grad():
        expected = base.model.get_video_features(patchify(pixels, 14, 2, 2), grid_thw).pooler_output
    assert visual.tokens.shape == (2, 2, 16, 16, 64) and visual.query_features.shape == (2, 2, 16, 16, 32)
    assert torch.equal(visual.tokens.flatten(1, 3), torch.stack(expected))


def test_query_features_come_back_in_grid_order(tiny_dir):
    """With every block attending fully the window size only changes the order the tower sees
    the patches in: 112-px windows (16 of them a frame) and one window a frame must give the same
    features in the same grid order."""
    from transformers.vision_utils import get_vision_window_index

    llm = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_dir).eval()
    tower = llm.model.visual
    tower.fullatt_block_indexes = list(range(len(tower.blocks)))
    pixels = torch.randn(1, 2, 3, SIZE, SIZE)
    windowed, grid_thw = encode_video(llm, pixels)
    order = get_vision_window_index(grid_thw, 2, tower.window_size, 14)[0]
    assert not torch.equal(order, torch.arange(len(order)))
    tower.window_size = llm.config.vision_config.window_size = SIZE
    whole, _ = encode_video(llm, pixels)
    torch.testing.assert_close(windowed.query_features, whole.query_features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(windowed.tokens, whole.tokens, rtol=1e-5, atol=1e-5)


def test_patch_rows_are_laid_out_as_transformers_lays_them_out(base):
    from transformers import Qwen2VLImageProcessorPil

    frames = torch.randn(3, 3, 56, 84)
    # transformers' image path (no torchvision) is a still video: each frame twice in time.
    images = Qwen2VLImageProcessorPil(do_resize=False, do_rescale=False, do_normalize=False)
    expected = images(images=[f.numpy() for f in frames], return_tensors="pt")["pixel_values"]
    still = frames.repeat_interleave(2, dim=0)[None]
    assert torch.equal(patchify(still, 14, 2, 2), expected)
    # Time inside a patch: each row through the patch embedding is the Conv3d over the video at
    # the patch's (t, y, x), merged cells row-major and their 2 x 2 patches row-major.
    video = torch.randn(1, 4, 3, 56, 84)
    embed = base.model.visual.patch_embed
    with torch.no_grad():
        direct = F.conv3d(video.transpose(1, 2), embed.proj.weight, stride=(2, 14, 14))[0]  # (D, 2, 4, 6)
        rows = embed(patchify(video, 14, 2, 2))
    cells = (
        direct.permute(1, 2, 3, 0).reshape(2, 2, 2, 3, 2, -1).permute(0, 1, 3, 2, 4, 5).reshape(rows.shape)
    )
    torch.testing.assert_close(rows, cells, rtol=1e-5, atol=1e-5)
    if not is_torchvision_available():  # transformers' video processor needs it
        return
    from transformers import Qwen2VLVideoProcessor

    reference = Qwen2VLVideoProcessor().patchify(video, patch_size=14, merge_size=2, temporal_patch_size=2)[0]
    assert torch.equal(patchify(video, 14, 2, 2), reference[0])


@pytest.mark.parametrize("fps", [None, 1.0])
def test_new_patch_leaves_logits_exactly_as_the_base(model, processor, base, fps):
    """Positions included: key frames 1 s apart are token frames 2 s apart (second_per_grid_ts),
    without times transformers' default 1 s."""
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    batch = make_batch(processor)
    times = None if fps is None else torch.arange(FRAMES)[None].expand(2, -1) / fps
    ids = batch["input_ids"]
    plain = dict(
        input_ids=ids,
        attention_mask=batch["attention_mask"],
        pixel_values_videos=patchify(batch["pixel_values_videos"], 14, 2, 2),
        video_grid_thw=torch.tensor([[2, 32, 32]] * 2),
        mm_token_type_ids=(ids == base.config.video_token_id).int() * 2,
    )
    if fps is not None:
        plain["second_per_grid_ts"] = torch.full((2,), 2 / fps)
    with torch.no_grad():
        expected = base(**plain).logits
        patched = model(**batch, side=audio(), frame_times=times).logits
        text_positions = base(**{k: v for k, v in plain.items() if k != "mm_token_type_ids"}).logits
    assert torch.equal(patched, expected)
    assert not torch.equal(expected, text_positions)  # the video tokens do take M-RoPE positions


def test_lora_adapts_only_the_llm(model):
    model.add_lora(r=4, alpha=8)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.base.named_parameters() if ".lora_A" in n}
    config = model.config.text_config
    assert len(adapted) == 7 * config.num_hidden_layers
    assert all(".language_model.layers." in n for n in adapted)
    # The vision tower has gate/up/down projections of the same names: they stay as they are.
    assert any(n.endswith("visual.blocks.0.mlp.gate_proj") for n, _ in model.base.named_modules())


def test_generate_batched_matches_single_and_the_full_forward(model, processor):
    """Decoding from the cache places new tokens as a full forward over prompt + answer does
    (transformers' rope_deltas), for left-padded batches and single prompts alike."""
    model.add_patch("audio", model.patch_config(side_dim=12, side_channel="audio"))
    randomize_output(model, "audio")
    side = audio()
    questions = ["what colour is the circle?", "how many beeps are there in the video?"]
    frames = [torch.randint(0, 256, (FRAMES, 16, 16, 3), dtype=torch.uint8) for _ in questions]
    batch = processor(questions, frames=frames, padding_side="left")
    ids = model.generate(**batch, side=side, max_new_tokens=4, do_sample=False)
    assert ids.shape == (2, 4)
    with torch.no_grad():
        full = model(
            input_ids=torch.cat([batch["input_ids"], ids], 1),
            attention_mask=F.pad(batch["attention_mask"], (0, 4), value=1),
            pixel_values_videos=batch["pixel_values_videos"],
            side=side,
        ).logits
    assert torch.equal(full[:, -5:-1].argmax(-1), ids)
    for i in range(2):
        one = {
            k: v[i : i + 1, -int(batch["attention_mask"][i].sum()) :]
            for k, v in batch.items()
            if k != "pixel_values_videos"
        }
        s = SideInputs(side["audio"].tokens[i : i + 1, : int(side["audio"].mask[i].sum())])
        single = model.generate(
            **one,
            pixel_values_videos=batch["pixel_values_videos"][i : i + 1],
            side={"audio": s},
            max_new_tokens=4,
            do_sample=False,
        )
        assert torch.equal(single, ids[i : i + 1])


def test_placeholders_are_what_the_model_scatters(model, processor):
    batch = make_batch(processor)
    ids = batch["input_ids"]
    video_pad, start, end = processor.tokenizer.convert_tokens_to_ids(
        ["<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    )
    assert (ids == video_pad).sum(1).tolist() == [TOKENS, TOKENS]  # video_grid_thw.prod() // 2**2
    for row in ids.tolist():  # one run of placeholders between vision_start and vision_end
        first = row.index(video_pad)
        assert row[first - 1] == start and row[first + TOKENS] == end and row.count(start) == 1
    visual = model.encode_video(batch["pixel_values_videos"], torch.arange(8.0).view(2, FRAMES))
    assert torch.equal(visual.frame_times, torch.tensor([[0.5, 2.5], [4.5, 6.5]]))
    tokens, extra = model.adapted_tokens(visual)
    inputs = model.family.llm_inputs(model.llava, visual, tokens, extra, "no_token")
    assert [len(v) for v in inputs["mm_encoder_outputs"]["video"].pooler_output] == [TOKENS, TOKENS]
    assert inputs["second_per_grid_ts"].tolist() == [2.0, 2.0]
    # Cached tokens (token frames) give the prompts frames give.
    items = [
        {"question": q, "answer": "red", "visual": visual[i : i + 1], "side": {}}
        for i, q in enumerate(["a?", "b?"])
    ]
    cached = QACollator(processor)(items)
    assert (cached["input_ids"] == video_pad).sum(1).tolist() == [TOKENS, TOKENS]


def test_adapters_that_pool_or_add_tokens(model, tiny_dir):
    """Pooling gives a smaller (t, h, w) grid its own positions; extra tokens after the grid are
    placed as text after the video."""
    model.add_patch("pool", model.adapter_config("pooling", grid=(4, 4), frames=1))
    model.add_patch(
        "audio", model.adapter_config("interleave", side_dim=12, side_channel="audio", side_frames=3)
    )
    processor = VideoChatProcessor.from_pretrained(tiny_dir, model)
    batch = make_batch(processor)
    placeholders = (batch["input_ids"] == model.config.video_token_id).sum(1)
    assert placeholders.tolist() == [16 + 3, 16 + 3]
    visual = model.encode_video(batch["pixel_values_videos"], torch.arange(8.0).view(2, FRAMES))
    inputs = model._multimodal_inputs(batch["input_ids"], None, visual, audio(), None)
    assert inputs["video_grid_thw"].tolist() == [[1, 8, 8]] * 2
    placeholder, types = batch["input_ids"] == model.config.video_token_id, inputs["mm_token_type_ids"]
    assert (types == 2).sum(1).tolist() == [16, 16] and (placeholder & (types == 0)).sum(1).tolist() == [3, 3]
    assert torch.equal(types == 2, placeholder & (placeholder.cumsum(1) <= 16))
    with torch.no_grad():
        assert torch.isfinite(model(**batch, visual=visual, side=audio()).loss)


def test_real_layout_files_ids_and_prompt(tmp_path):
    folder = save_tiny_model(tmp_path / "real", family="qwen2.5-vl", real_layout=True)
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "chat_template.json"} <= files
    assert {"tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"} <= files
    config = json.loads((folder / "config.json").read_text())
    video_ids = (config["video_token_id"], config["vision_start_token_id"], config["vision_end_token_id"])
    assert video_ids == (151656, 151652, 151653)
    assert config["text_config"]["vocab_size"] == 152064 and config["vision_config"]["tokens_per_second"] == 2
    preprocessing = json.loads((folder / "preprocessor_config.json").read_text())
    keys = {"min_pixels", "max_pixels", "patch_size", "temporal_patch_size", "merge_size", "image_mean"}
    assert keys | {"image_std"} <= set(preprocessing)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    special = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>", "<|video_pad|>"])
    assert special == [151643, 151645, 151656]
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template == CHAT_TEMPLATE
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == [151645, 151643]

    model = PatchedModel.from_base(str(folder))
    processor = VideoChatProcessor.from_pretrained(folder, model)
    ids = processor.prompt_ids("What colour is the circle?", FRAMES)
    text = tokenizer.decode(ids).replace("<|video_pad|>" * TOKENS, "<|video_pad|>")
    assert text == (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n<|vision_start|><|video_pad|>"
        "<|vision_end|>What colour is the circle?<|im_end|>\n<|im_start|>assistant\n"
    )
    preprocessor = processor.preprocessor
    assert (preprocessor.size, preprocessor.mean) == (SIZE, tuple(preprocessing["image_mean"]))
    # A video_preprocessor_config.json, where a checkpoint has one, comes first.
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "video_preprocessor_config.json").write_text(
        json.dumps({**preprocessing, "image_mean": [0.5] * 3})
    )
    assert model.family.preprocessor(str(tmp_path / "video"), model.config).mean == (0.5, 0.5, 0.5)
    frames = np.zeros((FRAMES, 90, 160, 3), dtype=np.uint8)
    assert processor.preprocessor(frames).shape == (FRAMES, 3, SIZE, SIZE)


def test_odd_frame_counts_are_refused(base):
    with pytest.raises(ValueError, match="merges 2 key frames into one; 3 is not a multiple"):
        encode_video(base, torch.zeros(1, 3, 3, SIZE, SIZE))
