"""`pave extract` over folders, lists and annotation files: skipping bad items, resuming."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from pave.batching import store_source
from pave.cli import main
from pave.data.datasets.base import Sample, load_samples
from pave.data.media import write_video
from pave.sidechannels import FeatureStore
from pave.sidechannels.base import SideChannel
from pave.sidechannels.extract import discover_items, extract


def clip(path, seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    audio = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, np.zeros((4, 16, 16, 3), np.uint8), 2, audio=audio)


@pytest.fixture
def media(tmp_path):
    root = tmp_path / "media"
    for i in range(4):
        clip(root / ("sub" if i % 2 else "") / f"v{i}.mp4", seed=i)
    return root


def test_discover_items(media, tmp_path):
    assert [i.id for i in discover_items("audio", media)] == ["sub/v1", "sub/v3", "v0", "v2"]
    listing = media / "list.txt"
    listing.write_text("# clips\nv0.mp4\n\nsub/v1.mp4\n")
    assert [(i.id, i.paths[0].name) for i in discover_items("audio", listing)] == [
        ("v0", "v0.mp4"),
        ("sub/v1", "v1.mp4"),
    ]
    annotation = tmp_path / "avqa.json"
    annotation.write_text(
        json.dumps([{"video_name": "v0", "id": 1}, {"video_name": "v0", "id": 2}, {"video_name": "v2"}])
    )
    items = discover_items("audio", annotation, media_root=media)
    assert [(i.id, i.paths[0].name) for i in items] == [("v0", "v0.mp4"), ("v2", "v2.mp4")]
    egoexo = tmp_path / "proficiency.json"
    paths = {"ego": "t/aria.mp4", **{f"exo{k}": f"t/cam0{k}.mp4" for k in (2, 1)}}
    egoexo.write_text(json.dumps({"annotations": [{"take_uid": "u", "video_paths": paths}]}))
    (item,) = discover_items("exo", egoexo, media_root=media)
    # The 448-pixel copies the Ego-Exo4D loader points its samples at, keyed as it looks them up.
    assert item.id == "t/downscaled/448/cam01+cam02" and [p.name for p in item.paths] == ["cam01.mp4", "cam02.mp4"]
    assert item.paths[0].parent == media / "t" / "downscaled" / "448"


def test_items_sharing_a_folder_keep_their_own_ids_and_are_found_by_their_views(tmp_path):
    """Two exo items whose views sit in one folder were once both stored as that folder."""
    listing = tmp_path / "views.txt"
    listing.write_text("take/a.mp4\ttake/b.mp4\ntake/c.mp4\ttake/d.mp4\n")
    items = discover_items("exo", listing)
    assert [i.id for i in items] == ["take/a+b", "take/c+d"]
    store = FeatureStore(tmp_path / "store")
    for value, item in enumerate(items):
        store.put(item.id, SideChannel(torch.full((2, 1, 1, 3), float(value)), torch.arange(2.0), "exo", "test"))
    source = store_source(store, "exo")
    for value, views in enumerate((("take/a.mp4", "take/b.mp4"), ("take/c.mp4", "take/d.mp4"))):
        sample = Sample(id=str(value), task="egoexo_proficiency", source="x", question="q", prompt="q", side_channels={"exo": views})
        assert source(sample).tokens.unique().tolist() == [float(value)]


def test_two_media_under_one_id_are_refused(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "clip.mkv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"two items would both be stored as 'clip'"):
        discover_items("audio", tmp_path)


def test_cli_skips_bad_items_and_resumes(media, tmp_path, caplog):
    (media / "bad.mp4").write_bytes(b"\x00" * 100)
    store_dir = tmp_path / "store"
    argv = ["extract", "audio", "--inputs", str(media), "--out", str(store_dir), "--workers", "2"]
    assert main(argv) == 0
    store = FeatureStore(store_dir)
    assert store.ids() == ["sub/v1", "sub/v3", "v0", "v2"]
    assert "bad.mp4: corrupt or truncated" in caplog.text
    mtimes = {p: p.stat().st_mtime_ns for p in (store_dir / "items").iterdir()}
    summary = extract("audio", media, store_dir, progress=False)
    assert (summary.extracted, summary.skipped, list(summary.failed)) == (0, 4, ["bad"])
    assert mtimes == {p: p.stat().st_mtime_ns for p in (store_dir / "items").iterdir()}


def test_cli_fails_when_nothing_succeeds(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"garbage")
    assert main(["extract", "audio", "--inputs", str(tmp_path), "--out", str(tmp_path / "s")]) == 1
    assert (
        main(["extract", "video", "--inputs", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    )  # no --model


def test_interrupted_run_resumes_without_redoing(media, tmp_path, monkeypatch):
    from pave.sidechannels.audio import LogMelAudioEncoder

    original, calls = LogMelAudioEncoder.encode, []

    def encode_then_interrupt(self, item):
        calls.append(item)
        if len(calls) == 3:
            raise KeyboardInterrupt  # not an item error: the whole run stops
        return original(self, item)

    monkeypatch.setattr(LogMelAudioEncoder, "encode", encode_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        extract("audio", media, tmp_path / "store", progress=False)
    done = FeatureStore(tmp_path / "store").ids()
    interrupted = next(i.id for i in discover_items("audio", media) if i.paths[0] == calls[2])
    # Items already running when the interrupt arrives may finish; the interrupted one is absent.
    assert 2 <= len(done) < 4 and interrupted not in done
    monkeypatch.setattr(LogMelAudioEncoder, "encode", original)
    summary = extract("audio", media, tmp_path / "store", progress=False)
    assert (summary.extracted, summary.skipped) == (4 - len(done), len(done))
    store = FeatureStore(tmp_path / "store")
    assert len(store) == 4 and all(store.get(i).tokens.shape[0] == 2 for i in store.ids())


def test_killed_process_leaves_a_consistent_store(tmp_path, monkeypatch):
    root = tmp_path / "media"
    for i in range(12):
        clip(root / f"v{i:02d}.mp4", seconds=20.0, seed=i)
    store_dir = tmp_path / "store"
    cmd = [
        sys.executable,
        "-m",
        "pave.cli",
        "extract",
        "audio",
        "--inputs",
        str(root),
        "--out",
        str(store_dir),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    items = store_dir / "items"
    deadline = time.monotonic() + 60
    # Kill as soon as one item is complete (temporaries start with a dot).
    while time.monotonic() < deadline and not (items.is_dir() and any(items.glob("[!.]*.safetensors"))):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = FeatureStore(store_dir)  # opens without the index and validates what is there
    done = set(store.ids())
    assert 0 < len(done) < 12
    for item_id in done:
        assert store.get(item_id).tokens.shape == (19, 1, 1, 256)
    mtimes = {p: p.stat().st_mtime_ns for p in items.glob("*.safetensors")}
    summary = extract("audio", root, store_dir, progress=False)
    assert summary.skipped == len(done) and summary.extracted == 12 - len(done) and not summary.failed
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items())
    assert not list(store_dir.rglob(".tmp-*"))


def test_qa_side_media_are_extracted_and_found_not_their_videos(tmp_path):
    """A separate side file ("side": {"audio": "clips/cat.wav"}) is what gets extracted and read;
    the video's own audio never stands in for it."""
    qa = tmp_path / "mine.jsonl"
    qa.write_text(json.dumps({"video": "clips/cat.mp4", "question": "Q?", "side": {"audio": "clips/cat.wav"}}) + "\n")
    (item,) = discover_items("audio", qa)
    assert item.id == "clips/cat.wav" and item.paths == (tmp_path / "clips" / "cat.wav",)
    sample = Sample(id="q", task="qa", source="x", question="Q?", prompt="Q?", video="clips/cat.mp4",
                    side_channels={"audio": ("clips/cat.wav",)})
    store = FeatureStore(tmp_path / "store")
    store.put("clips/cat", SideChannel(torch.zeros(2, 1, 1, 3), torch.arange(2.0), "audio", "test"))
    with pytest.raises(KeyError, match="no audio features"):
        store_source(store, "audio")(sample)
    store.put("clips/cat.wav", SideChannel(torch.ones(2, 1, 1, 3), torch.arange(2.0), "audio", "test"))
    assert store_source(store, "audio")(sample).tokens.unique().tolist() == [1.0]


def test_one_id_for_two_media_in_an_annotation_file_is_refused(tmp_path):
    annotation = tmp_path / "a.json"
    annotation.write_text(json.dumps([{"video": "clips/cat.mp4"}, {"video": "clips/cat.webm"}, {"video": "clips/cat.mp4"}]))
    with pytest.raises(ValueError, match=r"two items would both be stored as 'clips/cat'"):
        discover_items("audio", annotation)


def test_audio_folder_scans_pick_up_sound_files(tmp_path):
    for name in ("talk.m4a", "music.WAV", "clip.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [i.id for i in discover_items("audio", tmp_path)] == ["clip", "music.WAV", "talk.m4a"]
    assert [i.id for i in discover_items("video", tmp_path)] == ["clip"]


def test_task_annotations_are_extracted_where_their_loader_finds_the_media(synthetic_bench, tmp_path):
    """Music-AVQA names bare video ids; its loader knows the Real/Synthetic folders, so with
    --task the items are found and keyed exactly as training looks them up."""
    store_dir = tmp_path / "audio"
    args = ["extract", "audio", "--inputs", str(synthetic_bench["test"]), "--task", "music_avqa",
            "--media-root", str(synthetic_bench["root"]), "--out", str(store_dir)]
    assert main(args) == 0
    samples = load_samples("music_avqa", [synthetic_bench["test"]])
    store = FeatureStore(store_dir)
    assert len(store) == len({s.video for s in samples})
    source = store_source(store, "audio")
    for sample in samples:
        assert source(sample).kind == "audio"
    assert all(i.startswith("MUSIC-AVQA-videos-Synthetic/") for i in store.ids())
