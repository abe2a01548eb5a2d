"""The synthetic audio-visual benchmark: schema, balance, ground truth in the media, determinism."""

from collections import Counter

import numpy as np
import pytest

from pave.data.datasets.base import load_samples
from pave.data.media import read_audio, sample_frames
from pave.data.synthetic import COLOURS, PITCHES, VIDEO_FOLDER, SyntheticSpec, generate


def test_questions_are_balanced_and_load_as_music_avqa(synthetic_bench):
    samples = load_samples("music_avqa", [synthetic_bench["train"]])
    modalities = Counter(s.groups["modality"] for s in samples)
    assert modalities == {"Visual": 8, "Audio": 8, "Audio-Visual": 8}
    pretrain = load_samples("music_avqa", [synthetic_bench["pretrain"]])
    assert {s.groups["modality"] for s in pretrain} == {"Visual"}  # the base never hears audio
    assert not any("pitch" in s.question or "tone" in s.question for s in pretrain)


def test_answers_are_in_the_media(synthetic_bench):
    """The colour shown while the tone sounds and the tone's pitch, measured from the files."""
    samples = {(s.video, s.groups["modality"]): s.answers[0] for s in load_samples("music_avqa", [synthetic_bench["train"]])}
    for (video, modality), answer in samples.items():
        if modality != "Audio-Visual":
            continue
        path = synthetic_bench["root"] / video
        audio = read_audio(path)
        half = len(audio.samples) // 2
        loud_half = int(np.abs(audio.samples[half:]).mean() > np.abs(audio.samples[:half]).mean())
        spectrum = np.abs(np.fft.rfft(audio.samples[loud_half * half : (loud_half + 1) * half]))
        peak = np.fft.rfftfreq(half, 1 / audio.sample_rate)[spectrum.argmax()]
        assert min(PITCHES.items(), key=lambda kv: abs(kv[1] - peak))[0] == samples[(video, "Audio")]
        frames = sample_frames(path, 4)
        frame = frames.frames[1 + 2 * loud_half].reshape(-1, 3).astype(int)
        lit = frame[frame.sum(axis=1) > 150].mean(axis=0)  # pixels of the object
        nearest = min(COLOURS, key=lambda name: np.abs(np.array(COLOURS[name]) - lit).sum())
        assert nearest == answer


def test_same_seed_same_content(tmp_path):
    """Annotations, audio and decoded frames are identical (the videos are lossless: x264's
    rounding once made a few pixels differ between runs)."""
    spec = SyntheticSpec(train_videos=6, test_videos=2, duration=4.0)
    first, second = generate(tmp_path / "a", spec), generate(tmp_path / "b", spec)
    for split in ("train", "test", "pretrain"):
        assert first[split].read_bytes() == second[split].read_bytes()
    for video in sorted((tmp_path / "a" / VIDEO_FOLDER).glob("*.mp4")):
        other = tmp_path / "b" / VIDEO_FOLDER / video.name
        np.testing.assert_array_equal(read_audio(video).samples, read_audio(other).samples)
        np.testing.assert_array_equal(sample_frames(video, 4).frames, sample_frames(other, 4).frames)


def test_rerun_reuses_and_bad_spec_is_refused(synthetic_bench):
    paths = generate(synthetic_bench["root"], SyntheticSpec(train_videos=8, test_videos=4, duration=4.0))
    assert paths["train"] == synthetic_bench["train"]
    with pytest.raises(ValueError, match="segments"):
        SyntheticSpec(segments=9)
    with pytest.raises(ValueError, match="even"):
        SyntheticSpec(size=33)
