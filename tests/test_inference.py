"""`pave infer` and pave.inference on the tiny base: streaming, JSON and batch output, side
channels from the video, from media and from features, stacking, and clear errors."""

import json
import logging

import pytest
import torch
from PIL import Image

from inference_media import save_patches, write_clip
from pave.cli import main
from pave.inference import MissingSideChannel, load_for_inference, read_features
from pave.sidechannels import FeatureStore, SideChannel, get_encoder

QUESTION = "what colour is the square?"


@pytest.fixture(scope="module")
def patches(tiny_model_dir, tmp_path_factory):
    return save_patches(tiny_model_dir, tmp_path_factory.mktemp("patches"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture(scope="module")
def answerer(patches):
    return load_for_inference([patches["audio"]], num_frames=4)


def infer(capsys, *args):
    code = main(["infer", "--frames", "4", "--max-new-tokens", "6", *map(str, args)])
    return code, capsys.readouterr().out


def test_streamed_answer_is_the_whole_answer(answerer, clip):
    inputs = answerer.prepare(clip)  # the audio side channel comes from the video itself
    assert inputs.sources == {"audio": str(clip)}
    assert inputs.visual.tokens.shape[:4] == (1, 4, 4, 4)
    assert inputs.side["audio"].tokens.shape[1:] == (1, 1, 256)
    pieces = list(answerer.stream(inputs, QUESTION, max_new_tokens=6))
    assert "".join(pieces).strip() == answerer.answer(inputs, QUESTION, max_new_tokens=6)


def test_patch_changes_the_answer_tokens(answerer, clip):
    inputs = answerer.prepare(clip)
    prompt = _prompt(answerer)
    with answerer.model.disable_patches():
        base_logits = answerer.model(**prompt, visual=inputs.visual).logits[0]
    patched_logits = answerer.model(**prompt, visual=inputs.visual, side=inputs.side_inputs("cpu")).logits[0]
    video = (prompt["input_ids"][0] == answerer.model.config.video_token_id).nonzero().flatten()
    # The causal LM sees the patched video tokens only from the first of them on: the text
    # before is untouched, and the position the answer's first token is read from changes.
    torch.testing.assert_close(patched_logits[: video[0]], base_logits[: video[0]], rtol=0, atol=0)
    answer_base, answer_patched = base_logits[-1].softmax(-1), patched_logits[-1].softmax(-1)
    assert (answer_base - answer_patched).abs().max() > 1e-3


def _prompt(answerer):
    batch = answerer.processor([QUESTION], num_frames=4, padding_side="left")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def test_cli_streams_then_json(capsys, patches, clip, answerer):
    expected = answerer.answer(answerer.prepare(clip), QUESTION, max_new_tokens=6)
    code, out = infer(capsys, "--patch", patches["audio"], "--video", clip, "--question", QUESTION)
    assert code == 0 and out.strip() == expected

    code, out = infer(capsys, "--patch", patches["audio"], "--video", clip, "--question", QUESTION, "--json")
    assert code == 0
    record = json.loads(out)
    assert record == {
        "id": None,
        "video": str(clip),
        "question": QUESTION,
        "answer": expected,
        "patches": ["audio"],
        "side": {"audio": str(clip)},
        "seconds": record["seconds"],
        "heatmap": None,
    }


def test_batch_jsonl_with_side_paths_and_heatmaps(capsys, patches, clip, tmp_path):
    (tmp_path / "clip.mp4").symlink_to(clip)
    lines = [
        {"id": "a", "video": "clip.mp4", "question": QUESTION},
        {"id": "b", "video": "clip.mp4", "question": "how many beeps?", "audio": "clip.mp4"},
    ]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    heatmap = tmp_path / "maps" / "attention.png"
    code, out = infer(
        capsys, "--patch", patches["audio"], "--batch", questions, "--json", "--heatmap", heatmap
    )
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == ["a", "b"]
    assert records[1]["side"] == {"audio": str(tmp_path / "clip.mp4")}
    for number, record in enumerate(records, 1):
        path = tmp_path / "maps" / f"attention-{number:04d}.png"
        assert record["heatmap"] == str(path)
        assert Image.open(path).size == (1200, 480)


def test_features_give_the_same_answer_as_media(capsys, patches, clip, tmp_path, answerer):
    store = FeatureStore(tmp_path / "store")
    store.put("clip", get_encoder("audio").encode(clip), source=str(clip))
    store.flush()
    item = next((tmp_path / "store" / "items").glob("*.safetensors"))
    assert read_features(item).tokens.equal(read_features(tmp_path / "store", "clip").tokens)

    expected = answerer.answer(answerer.prepare(clip), QUESTION, max_new_tokens=6)
    for side in (["--side", item], ["--side", tmp_path / "store", "--side-id", "clip"]):
        code, out = infer(
            capsys, "--patch", patches["audio"], "--video", clip, "--question", QUESTION, "--json", *side
        )
        assert code == 0
        record = json.loads(out)
        assert record["answer"] == expected and record["side"] == {"audio": "features"}


def test_stacked_patches_read_their_own_side_channels(capsys, patches, clip, tmp_path):
    answerer = load_for_inference([patches["video"], patches["audio"]], num_frames=4)
    assert answerer.model.active_patches == ["video", "audio"] and answerer.model.has_lora
    inputs = answerer.prepare(clip)  # dense frames and audio, both from the video file
    assert inputs.side["video"].tokens.shape[1:] == (2, 2, 32)  # 2 fps through the base's tower
    assert set(answerer.attention(inputs)) == {"video", "audio"}
    path = answerer.save_heatmap(inputs, tmp_path / "video.png", patch="video", queries=[(1, 2)])
    assert Image.open(path).size == (1200, 480)

    code, out = infer(
        capsys,
        "--patch",
        patches["video"],
        "--patch",
        patches["audio"],
        "--video",
        clip,
        "--question",
        QUESTION,
        "--json",
    )
    assert code == 0 and json.loads(out)["patches"] == ["video", "audio"]


def test_missing_side_channel_is_named(capsys, caplog, patches, clip):
    with pytest.raises(MissingSideChannel, match="'exo' side channel"):
        load_for_inference([patches["exo"]], num_frames=4).prepare(clip)
    with caplog.at_level(logging.ERROR):
        code, out = infer(capsys, "--patch", patches["exo"], "--video", clip, "--question", QUESTION)
    assert code == 2 and out == ""
    assert "--exo FILE" in caplog.text


def test_features_of_another_width_are_refused(capsys, caplog, patches, clip, tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.put("clip", SideChannel(torch.randn(3, 1, 1, 12), torch.arange(3.0), "audio", "imagebind-huge"))
    store.flush()
    with caplog.at_level(logging.ERROR):
        code, _ = infer(
            capsys,
            "--patch",
            patches["audio"],
            "--video",
            clip,
            "--question",
            QUESTION,
            "--side",
            tmp_path / "store",
            "--side-id",
            "clip",
        )
    assert code == 1 and "expects 256-d" in caplog.text


def test_batch_skips_a_bad_question_and_names_it(capsys, caplog, patches, clip, tmp_path):
    (tmp_path / "clip.mp4").symlink_to(clip)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    lines = [
        {"id": "a", "video": "clip.mp4", "question": QUESTION},
        {"id": "b", "video": "broken.mp4", "question": QUESTION},
        {"id": "c", "video": "missing.mp4", "question": QUESTION},
        {"id": "d", "video": "clip.mp4", "question": "how many beeps?"},
    ]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, out = infer(capsys, "--patch", patches["audio"], "--batch", questions, "--json")
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["a", "d"]
    assert f"{questions}, question 2 ({tmp_path / 'broken.mp4'}, id b): skipped" in caplog.text
    assert "question 3" in caplog.text and "missing.mp4" in caplog.text
    assert "answered 2 of 4 questions; 2 skipped" in caplog.text
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text(json.dumps(lines[1]) + "\n")
    assert infer(capsys, "--patch", patches["audio"], "--batch", only_bad, "--json")[0] == 1


def test_usage_errors(capsys, patches, clip):
    with pytest.raises(SystemExit, match="--video and --question"):
        main(["infer", "--patch", str(patches["audio"]), "--video", str(clip)])
