"""Resumable generation: ids never come from a progress bar, a torn last line is dropped, and a
predictions file made by another model or with other settings is refused."""

import functools
import json
from pathlib import Path

import pytest
import torch
from tqdm.auto import tqdm

from pave.cli import main
from pave.data.datasets.base import load_samples
from pave.evaluation import runner
from pave.evaluation.evaluate import evaluate
from pave.evaluation.provenance import StalePredictionsError, record_path
from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor

FRAMES = 2


def patched(tiny_model_dir, seed: int) -> PatchedModel:
    model = PatchedModel.from_base(str(tiny_model_dir))
    model.add_patch("audio", model.patch_config(side_dim=256, side_channel="audio", hidden_dim=16, num_heads=2))
    torch.manual_seed(seed)
    with torch.no_grad():  # a patch that changes the answers, differently per seed
        model.patches["audio"].output_norm.weight.normal_(std=5.0)
    return model.eval()


def run_eval(model, tiny_model_dir, bench, out, **options):
    processor = VideoChatProcessor.from_pretrained(tiny_model_dir, model)
    options = {"num_frames": FRAMES, "max_new_tokens": 3, **options}
    return evaluate(model, processor, "music_avqa", [bench["test"]], bench["root"], out, {"audio": bench["audio"]}, **options)


def predictions(out):
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_ids_do_not_depend_on_the_progress_bar(tiny_model_dir, synthetic_bench, tmp_path, monkeypatch):
    model = patched(tiny_model_dir, 0)
    run_eval(model, tiny_model_dir, synthetic_bench, tmp_path / "one", batch_size=1)
    monkeypatch.setattr(runner, "tqdm", functools.partial(tqdm, disable=True))
    run_eval(model, tiny_model_dir, synthetic_bench, tmp_path / "batched", batch_size=5)
    one, batched = predictions(tmp_path / "one"), predictions(tmp_path / "batched")
    ids = [s.id for s in load_samples("music_avqa", [synthetic_bench["test"]])]
    assert [p["id"] for p in batched] == ids
    assert len({p["prediction"] for p in one}) > 1  # the answers differ, so a shifted id would show
    assert {p["id"]: p["prediction"] for p in batched} == {p["id"]: p["prediction"] for p in one}


def test_a_torn_last_line_is_dropped_and_answered_again(tiny_model_dir, synthetic_bench, tmp_path):
    model = patched(tiny_model_dir, 0)
    out = tmp_path / "eval"
    run_eval(model, tiny_model_dir, synthetic_bench, out, batch_size=4)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    (out / "predictions.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:9])  # killed mid-line
    report = run_eval(model, tiny_model_dir, synthetic_bench, out, batch_size=4)
    assert report["counts"]["scored"] == len(lines)
    assert sorted((out / "predictions.jsonl").read_text().splitlines()) == sorted(lines)


def test_predictions_of_another_model_or_setting_are_refused(tiny_model_dir, synthetic_bench, tmp_path):
    out = tmp_path / "eval"
    run_eval(patched(tiny_model_dir, 0), tiny_model_dir, synthetic_bench, out)
    record = json.loads(record_path(out / "predictions.jsonl").read_text())
    assert record["frames"] == FRAMES and record["task"] == "music_avqa" and "audio" in record["patches"]
    other = patched(tiny_model_dir, 1)
    with pytest.raises(StalePredictionsError, match=r"was made by another run \(weights: "):
        run_eval(other, tiny_model_dir, synthetic_bench, out)
    with pytest.raises(StalePredictionsError, match=r"frames: 2 then, 3 now"):
        run_eval(patched(tiny_model_dir, 0), tiny_model_dir, synthetic_bench, out, num_frames=3)
    with pytest.raises(StalePredictionsError, match=r"generation.max_new_tokens: 3 then, 5 now"):
        run_eval(patched(tiny_model_dir, 0), tiny_model_dir, synthetic_bench, out, max_new_tokens=5)
    fresh = run_eval(other, tiny_model_dir, synthetic_bench, out, restart=True)
    assert fresh["counts"]["scored"] == len(predictions(out))
    assert json.loads(record_path(out / "predictions.jsonl").read_text())["weights"] != record["weights"]


def test_predictions_without_a_record_are_refused(tiny_model_dir, synthetic_bench, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "predictions.jsonl").write_text(json.dumps({"id": "x", "prediction": "red"}) + "\n")
    with pytest.raises(StalePredictionsError, match="no predictions.run.json saying what made them"):
        run_eval(patched(tiny_model_dir, 0), tiny_model_dir, synthetic_bench, out)


def test_eval_cli_refuses_another_patch_then_restarts(tiny_model_dir, synthetic_bench, tmp_path, caplog):
    patches = [patched(tiny_model_dir, seed).save_pretrained(tmp_path / f"patch{seed}") for seed in (0, 1)]
    out = tmp_path / "eval"

    def args(patch, *extra):
        return [
            "eval", "--task", "music_avqa", "--annotations", str(synthetic_bench["test"]),
            "--media-root", str(synthetic_bench["root"]), "--patch", str(patch),
            "--features", f"audio={synthetic_bench['audio']}", "--out", str(out),
            "--frames", str(FRAMES), "--max-new-tokens", "3", *extra,
        ]

    assert main(args(patches[0])) == 0
    first = (out / "predictions.jsonl").read_text()
    assert main(args(patches[1])) == 1
    assert "was made by another run" in caplog.text and "use another output folder, or --restart" in caplog.text
    assert (out / "predictions.jsonl").read_text() == first  # nothing written by the refused run
    assert main(args(patches[1], "--restart")) == 0


def test_eval_skips_unreadable_samples_records_why_and_scores_the_rest(tiny_model_dir, synthetic_bench, tmp_path, caplog):
    """A corrupt video, a missing one and a missing feature item cost only their own samples."""
    import shutil

    media = tmp_path / "media" / "MUSIC-AVQA-videos-Synthetic"
    media.mkdir(parents=True)
    videos = sorted((synthetic_bench["root"] / "MUSIC-AVQA-videos-Synthetic").glob("syn_test_*.mp4"))
    for video in videos[1:]:
        (media / video.name).symlink_to(video)
    (media / videos[1].name).unlink()
    (media / videos[1].name).write_bytes(b"\x00" * 200)  # corrupt; videos[0] is missing altogether
    store = tmp_path / "audio"
    shutil.copytree(synthetic_bench["audio"], store)
    item = next(p for p in (store / "items").iterdir() if videos[2].stem in p.name)
    item.unlink()
    patch = patched(tiny_model_dir, 0).save_pretrained(tmp_path / "patch")
    out = tmp_path / "eval"
    args = [
        "eval", "--task", "music_avqa", "--annotations", str(synthetic_bench["test"]), "--media-root", str(tmp_path / "media"),
        "--patch", str(patch), "--features", f"audio={store}", "--out", str(out), "--frames", "2", "--max-new-tokens", "2",
    ]
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    samples = load_samples("music_avqa", [synthetic_bench["test"]])
    bad = {s.id for s in samples if Path(s.video).stem in {v.stem for v in videos[:3]}}
    assert set(report["skipped"]) == bad and report["counts"]["skipped"] == len(bad)
    assert report["counts"]["scored"] == len(samples) - len(bad) > 0
    reasons = " ".join(report["skipped"].values())
    assert videos[0].name in reasons and "corrupt" in reasons.lower() and "no audio features" in reasons
    assert "skipping sample" in caplog.text


def test_eval_with_nothing_to_score_fails(tiny_model_dir, synthetic_bench, tmp_path, caplog):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    patch = patched(tiny_model_dir, 0).save_pretrained(tmp_path / "patch")
    args = [
        "eval", "--task", "music_avqa", "--annotations", str(empty), "--media-root", str(synthetic_bench["root"]),
        "--patch", str(patch), "--features", f"audio={synthetic_bench['audio']}", "--out", str(tmp_path / "e"),
    ]
    assert main(args) == 1
    assert "nothing could be scored (0 samples)" in caplog.text


def test_a_killed_cache_build_leaves_no_temp_file_behind(tiny_model_dir, synthetic_bench, tmp_path):
    from pave.batching import VisualTokenCache

    model = patched(tiny_model_dir, 0)
    processor = VideoChatProcessor.from_pretrained(tiny_model_dir, model)
    cache = VisualTokenCache(tmp_path / "cache", model, processor.preprocessor, FRAMES)
    videos = sorted((synthetic_bench["root"] / "MUSIC-AVQA-videos-Synthetic").glob("syn_test_*.mp4"))[:2]
    cache.build(videos)
    from pave.files import TMP_PREFIX

    torn = cache.directory / f"{TMP_PREFIX}12345-{cache.path(videos[0]).name}"
    torn.write_bytes(b"")  # what a kill between save_file and os.replace leaves
    cache.build(videos)  # nothing to encode, the leftover still goes
    assert not torn.exists() and all(cache.path(v).exists() for v in videos)
