"""Media decoding on files made here: each frame's index is written in its pixels as 8 bits."""

import av
import numpy as np
import pytest

from pave.data import media
from pave.data.media import (
    MediaError,
    iter_frames_at_rate,
    read_audio,
    read_frame_folder,
    read_scan,
    sample_frames,
    uniform_frame_indices,
    write_video,
)
from scan_files import write_scan

FPS, NUM_FRAMES, SIDE = 30, 150, 64
TONE_HZ, AUDIO_SECONDS = 440.0, 5.0


def indexed_frames(n: int, side: int = SIDE) -> np.ndarray:
    """(n, side, side, 3) frames; bit b of the frame index is the brightness of column stripe b."""
    frames = np.zeros((n, side, side, 3), np.uint8)
    stripe = side // 8
    for i in range(n):
        for b in range(8):
            if (i >> b) & 1:
                frames[i, :, b * stripe : (b + 1) * stripe] = 255
    return frames


def frame_index(frame: np.ndarray) -> int:
    stripes = frame[..., 1].reshape(frame.shape[0], 8, -1).mean(axis=(0, 2)) > 128
    return int(stripes @ (1 << np.arange(8)))


def tone(seconds: float, hz: float = TONE_HZ, rate: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "indexed.mp4"
    # Key frames every 0.5 s, so sampling 32 of 150 frames seeks across many GOPs.
    return write_video(
        path, indexed_frames(NUM_FRAMES), FPS, audio=tone(AUDIO_SECONDS), keyframe_interval=0.5
    )


def test_sample_frames_are_the_uniform_ones_with_their_times(video):
    sampled = sample_frames(video, 32)
    expected = uniform_frame_indices(NUM_FRAMES, 32)
    assert sampled.frames.shape == (32, SIDE, SIDE, 3) and sampled.frames.dtype == np.uint8
    assert [frame_index(f) for f in sampled.frames] == expected.tolist()
    np.testing.assert_allclose(sampled.timestamps, expected / FPS, atol=1e-6)


def test_a_window_samples_inside_it(video):
    """MVBench's start/end: the frames of 1.0-3.0 s (frames 30-90), evenly spaced."""
    sampled = sample_frames(video, 8, window=(1.0, 3.0))
    expected = 30 + uniform_frame_indices(61, 8)
    assert [frame_index(f) for f in sampled.frames] == expected.tolist()
    np.testing.assert_allclose(sampled.timestamps, expected / FPS, atol=1e-6)
    tail = sample_frames(video, 4, window=(4.5, 60.0))  # a window past the end stops at the last frame
    assert [frame_index(f) for f in tail.frames][-1] == NUM_FRAMES - 1
    with pytest.raises(MediaError, match="window 9.0-12.0 s is empty or past the end"):
        sample_frames(video, 4, window=(9.0, 12.0))


def test_a_folder_of_frames_reads_as_a_video_of_them(tmp_path):
    from PIL import Image

    for i, frame in enumerate(indexed_frames(40)):  # 00001.jpg-style names, unpadded here: natural order
        Image.fromarray(frame).save(tmp_path / f"frame_{i + 1}.png")
    whole = read_frame_folder(tmp_path, 5, frame_rate=3.0)
    assert [frame_index(f) for f in whole.frames] == uniform_frame_indices(40, 5).tolist()
    window = read_frame_folder(tmp_path, 4, frame_rate=3.0, window=(2.0, 5.0))  # frames 6-15
    expected = 6 + uniform_frame_indices(10, 4)
    assert [frame_index(f) for f in window.frames] == expected.tolist()
    np.testing.assert_allclose(window.timestamps, expected / 3.0)
    with pytest.raises(MediaError, match="not a folder of frame images"):
        read_frame_folder(tmp_path / "nowhere", 4)


def test_sequential_fallback_gives_the_same_frames(video, monkeypatch):
    seeking = sample_frames(video, 7)
    monkeypatch.setattr(media, "_pick_by_seeking", lambda *args: None)
    sequential = sample_frames(video, 7)
    np.testing.assert_array_equal(seeking.frames, sequential.frames)
    np.testing.assert_array_equal(seeking.timestamps, sequential.timestamps)


def test_frames_at_rate(video):
    pairs = list(iter_frames_at_rate(video, fps=2.0))
    assert len(pairs) == NUM_FRAMES // FPS * 2
    assert [frame_index(f) for _, f in pairs] == list(range(0, NUM_FRAMES, FPS // 2))
    np.testing.assert_allclose([t for t, _ in pairs], np.arange(len(pairs)) / 2, atol=1e-6)


def test_read_audio_is_16k_mono_with_its_duration(video):
    audio = read_audio(video)
    assert audio.sample_rate == 16000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    # AAC adds up to two 1024-sample frames of padding.
    assert AUDIO_SECONDS <= audio.duration < AUDIO_SECONDS + 2 * 1024 / 16000
    spectrum = np.abs(np.fft.rfft(audio.samples))
    assert abs(np.argmax(spectrum) * 16000 / len(audio.samples) - TONE_HZ) < 2


def test_read_audio_resamples(tmp_path):
    path = write_video(
        tmp_path / "a.mp4", indexed_frames(10), 10, audio=tone(1.0, rate=44100), sample_rate=44100
    )
    audio = read_audio(path, sample_rate=16000)
    assert 1.0 <= audio.duration < 1.0 + 2 * 1024 / 44100 + 0.01


# --- bad inputs: each gives a MediaError naming the file and what was expected ---


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match=r"nope\.mp4: no such file"):
        sample_frames(tmp_path / "nope.mp4")


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for read in (sample_frames, read_audio):
        with pytest.raises(MediaError, match="garbage.mp4: corrupt or truncated"):
            read(path)


def test_truncated_file(tmp_path, video):
    data = video.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated.mp4: corrupt or truncated"):
        sample_frames(path)


def test_truncated_streamable_file(tmp_path):
    # With the index at the front (faststart), a cut file opens but its frames end early.
    path = tmp_path / "fast.mp4"
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width = stream.height = SIDE
        for image in indexed_frames(NUM_FRAMES):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="fast.mp4: .*truncated"):
        sample_frames(path)
    with pytest.raises(MediaError, match="fast.mp4: .*truncated"):
        list(iter_frames_at_rate(path))


def test_no_audio_stream(tmp_path):
    path = write_video(tmp_path / "silent.mp4", indexed_frames(10), 10)
    with pytest.raises(MediaError, match="silent.mp4: has no audio stream"):
        read_audio(path)


def test_zero_duration(tmp_path):
    # A WAV header with no samples: the stream is there, but empty. (FFmpeg does not keep an
    # empty video track in mp4 or mkv, so the video check is reached only by odd files.)
    path = tmp_path / "empty.wav"
    with av.open(str(path), mode="w") as out:
        out.add_stream("pcm_s16le", rate=16000, layout="mono")
        out.start_encoding()
    with pytest.raises(MediaError, match="empty.wav: audio stream has zero duration"):
        read_audio(path)
    with pytest.raises(MediaError, match="empty.wav: has no video stream"):
        sample_frames(path)


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), 10)


# --- RGB-D scans ---


def make_scan(folder, ids=(0, 2, 10, 7), bad_pose_id=7, size=(24, 32)):
    """Frame i: colour value i, depth 1 m + i mm, camera at x = i; frame ``bad_pose_id`` lost tracking."""
    poses = np.tile(np.eye(4), (len(ids), 1, 1))
    poses[:, 0, 3] = ids
    if bad_pose_id in ids:
        poses[list(ids).index(bad_pose_id)] = -np.inf
    colors = np.stack([np.full((*size, 3), i, np.uint8) for i in ids])
    depths = np.stack([np.full(size, 1 + i / 1000) for i in ids])
    return write_scan(folder, colors, depths, poses, np.diag([20.0, 20.0, 1.0]), frame_ids=list(ids))


def test_read_scan(tmp_path):
    scan = read_scan(make_scan(tmp_path / "scene0000_00"), num_frames=32)
    assert scan.frame_ids.tolist() == [0, 2, 10]  # numeric order, inf pose skipped, no padding
    assert scan.colors.shape == (3, 24, 32, 3) and scan.depths.shape == (3, 24, 32)
    np.testing.assert_allclose(scan.depths[:, 0, 0], [1.0, 1.002, 1.010], rtol=1e-6)  # millimetres -> metres
    np.testing.assert_allclose(scan.poses[:, 0, 3], [0, 2, 10])
    np.testing.assert_allclose(scan.timestamps, np.array([0, 2, 10]) / 30)
    assert scan.intrinsics.shape == (3, 3)


def test_read_scan_axis_alignment_and_sampling(tmp_path):
    folder = make_scan(tmp_path / "scene", ids=range(10), bad_pose_id=None)
    align = np.eye(4)
    align[2, 3] = 5.0
    np.savetxt(folder / "axis_align_matrix.txt", align.reshape(1, 16))
    scan = read_scan(folder, num_frames=4)
    assert scan.frame_ids.tolist() == [0, 3, 6, 9]
    np.testing.assert_allclose(scan.poses[:, 2, 3], 5.0)


def test_read_scan_errors(tmp_path):
    with pytest.raises(MediaError, match="not a scan folder"):
        read_scan(tmp_path)
    folder = make_scan(tmp_path / "s", ids=(1,))
    (folder / "depth" / "1.png").write_bytes(b"not a png")
    with pytest.raises(MediaError, match=r"1\.png: corrupt or truncated image"):
        read_scan(folder)


def test_a_rotated_phone_video_is_read_as_stored_with_a_warning(tmp_path, caplog):
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        for frame in indexed_frames(10)[:, :32]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    sampled = sample_frames(path, 4)
    sample_frames(path, 4)
    assert sampled.frames.shape == (4, 32, 64, 3)  # not turned to 64 x 32
    assert caplog.text.count("asks players to rotate it by 90 degrees") == 1
