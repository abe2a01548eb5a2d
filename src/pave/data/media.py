"""Media decoding on PyAV: key frames, dense frames, audio, RGB-D scans; and a small mp4 writer.

Every reader raises :class:`MediaError` (a ``ValueError``) naming the file and what was expected
when the input is missing, corrupt, truncated, lacks the needed stream or has zero duration.

Timestamps are in seconds from the start of the stream (the stream's ``start_time`` is
subtracted), so a side channel and the key frames of the same file share one clock.

Frames come out as stored. A phone video whose display matrix asks players to rotate it is not
rotated: decord, which LLaVA-OneVision was trained with (and the authors' scripts read with),
does not rotate either, so the base sees such videos as it saw them in training. A warning names
each such file once.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".MP4")
# Sound files an audio side channel may come from instead of a video's own track.
AUDIO_SUFFIXES = (".wav", ".m4a", ".mp3", ".flac", ".aac", ".ogg", ".opus")
# Frame folders and scans' colour images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class MediaError(ValueError):
    """A media file could not be read as expected. The message names the file."""


@dataclass
class Frames:
    """Decoded RGB frames. ``frames`` (T, H, W, 3) uint8; ``timestamps`` (T,) float64 seconds."""

    frames: np.ndarray
    timestamps: np.ndarray


@dataclass
class Audio:
    """A mono waveform. ``samples`` (N,) float32 in [-1, 1]; ``duration`` = N / sample_rate seconds."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class Scan:
    """Posed RGB-D frames of a scan (T frames).

    colors: (T, H, W, 3) uint8. depths: (T, h, w) float32 metres, 0 where the sensor gave no
    depth (depth may have another resolution than colour; both cover the same field of view).
    poses: (T, 4, 4) float64 camera-to-world. intrinsics: (3, 3) float64 of the depth camera.
    frame_ids: (T,) int64, the numeric file names. timestamps: (T,) float64 seconds.
    """

    colors: np.ndarray
    depths: np.ndarray
    poses: np.ndarray
    intrinsics: np.ndarray
    frame_ids: np.ndarray
    timestamps: np.ndarray


def _open(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file (expected a video or audio file)")
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: corrupt or truncated media file, cannot be opened ({exc})") from exc


def _video_stream(container, path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise MediaError(f"{path}: has no video stream (expected a video)")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame-level threading inside FFmpeg's decoder
    return stream


def _start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _duration(container, stream, path) -> float:
    if stream.duration is not None and stream.duration > 0:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    if duration <= 0:
        raise MediaError(f"{path}: zero duration (expected a stream with at least one frame or sample)")
    return duration


def _frame_rate(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def uniform_frame_indices(total: int, num_frames: int) -> np.ndarray:
    """LLaVA-OneVision's sampling: ``num_frames`` indices evenly spaced from the first frame to
    the last (``linspace(0, total - 1, num_frames)`` truncated to int). (num_frames,) int64."""
    return np.linspace(0, total - 1, num_frames).astype(np.int64)


def _decode(container, stream, path) -> Iterator[av.VideoFrame]:
    try:
        for frame in container.decode(stream):
            if frame.rotation and str(path) not in _ROTATED:
                _ROTATED.add(str(path))
                logger.warning(
                    "%s: the file asks players to rotate it by %d degrees; its frames are used as stored, "
                    "as decord, which LLaVA-OneVision was trained with, reads them",
                    path, frame.rotation,
                )
            if frame.time is not None:
                yield frame
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: corrupt or truncated video, decoding failed ({exc})") from exc


# Files already warned about for a rotation display matrix (one warning per file and process).
_ROTATED: set[str] = set()


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _check_reached(path, target: float, last: float | None, period: float) -> None:
    # Container metadata may overstate the length by a frame or two; more than that means the
    # frames are not there, i.e. the file was cut short.
    if last is None or target - last > max(2 * period, 0.5):
        reached = "nothing" if last is None else f"{last:.2f}s"
        raise MediaError(
            f"{path}: truncated video, expected a frame at {target:.2f}s but decoding stopped at {reached}"
        )


def _pick_sequential(container, stream, path, targets: np.ndarray, tol: float, period: float) -> list:
    """One pass over the stream: for each target time the first frame at or after ``target - tol``."""
    start, picked, last, i = _start(stream), [], None, 0
    for frame in _decode(container, stream, path):
        t = frame.time - start
        while i < len(targets) and t >= targets[i] - tol:
            picked.append((t, _rgb(frame)))
            i += 1
        if i == len(targets):
            return picked
        last = (t, frame)
    _check_reached(path, targets[i], None if last is None else last[0], period)
    # Metadata overstated the length: the remaining targets get the final frame.
    picked += [(last[0], _rgb(last[1]))] * (len(targets) - i)
    return picked


def _pick_by_seeking(container, stream, path, targets: np.ndarray, tol: float, period: float) -> list | None:
    """Seek to the key frame before each target and decode forward to it. ``None`` when the
    stream cannot be seeked reliably (the caller then decodes sequentially)."""
    start, picked = _start(stream), []
    for target in targets:
        offset = int((target + start) / stream.time_base)
        try:
            container.seek(offset, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            return None
        last = None
        for frame in _decode(container, stream, path):
            t = frame.time - start
            if last is None and t > target + tol:
                return None  # landed after the target: the index is unreliable
            last = (t, frame)
            if t >= target - tol:
                break
        else:
            _check_reached(path, target, None if last is None else last[0], period)
        picked.append((last[0], _rgb(last[1])))
    return picked


def sample_frames(
    path: str | Path, num_frames: int = 32, window: tuple[float, float] | None = None
) -> Frames:
    """Uniformly sample ``num_frames`` key frames over the whole video (LLaVA-OneVision protocol),
    or over ``window`` = (start, end) seconds of it (MVBench's question windows).

    Frame indices follow :func:`uniform_frame_indices` over the stream's frame count (or the
    window's frames); each is read by seeking to the preceding key frame, so a long video costs
    ``num_frames`` short decodes, not a full one. Streams that cannot be seeked are decoded once
    from the start instead.

    Returns (num_frames, H, W, 3) uint8 frames and their presentation times (num_frames,).
    """
    container = _open(path)
    with container:
        stream = _video_stream(container, path)
        duration = _duration(container, stream, path)
        rate = _frame_rate(stream)
        if rate <= 0:
            raise MediaError(f"{path}: video stream has no frame rate (expected a constant-rate video)")
        total = stream.frames or max(1, round(duration * rate))
        first, last = _window_indices(path, window, rate, total)
        targets = (first + uniform_frame_indices(last - first + 1, num_frames)) / rate
        # Half a frame period: the nearest frame at or after each target, robust to rounding of pts.
        tol = 0.5 / rate
        picked = _pick_by_seeking(container, stream, path, targets, tol, 1 / rate)
        if picked is None:
            logger.debug("%s: seeking unreliable, decoding sequentially", path)
            container.seek(0)
            picked = _pick_sequential(container, stream, path, targets, tol, 1 / rate)
    return Frames(np.stack([f for _, f in picked]), np.array([t for t, _ in picked], dtype=np.float64))


def _window_indices(path, window: tuple[float, float] | None, rate: float, total: int) -> tuple[int, int]:
    """First and last frame index of ``window`` (seconds) among ``total`` frames at ``rate``."""
    if window is None:
        return 0, total - 1
    start, end = window
    first, last = max(0, round(start * rate)), min(total - 1, round(end * rate))
    if not start <= end or first > last:
        raise MediaError(f"{path}: window {start}-{end} s is empty or past the end ({total / rate:.2f} s)")
    return first, last


def read_frame_folder(
    folder: str | Path, num_frames: int = 32, frame_rate: float = 3.0, window: tuple[float, float] | None = None
) -> Frames:
    """Key frames of a video stored as a folder of images (MVBench's TVQA frames), sampled as
    :func:`sample_frames` samples a video file: ``num_frames`` evenly spaced over the folder, or
    over ``window`` seconds of it. Images are ordered by the number in their names
    (``frame_2`` before ``frame_10``); frame ``i`` is at ``i / frame_rate`` seconds."""
    folder = Path(folder)
    images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES] if folder.is_dir() else []
    if not images:
        raise MediaError(f"{folder}: not a folder of frame images ({', '.join(IMAGE_SUFFIXES)})")
    images.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    first, last = _window_indices(folder, window, frame_rate, len(images))
    picked = first + uniform_frame_indices(last - first + 1, num_frames)
    return Frames(np.stack([_read_image(images[i], np.uint8) for i in picked]), picked / frame_rate)


def iter_frames_at_rate(path: str | Path, fps: float = 2.0) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(timestamp, frame)`` at ``fps`` (the dense channel): for target times 0, 1/fps, ...
    the first frame at or after each target. Frames are (H, W, 3) uint8.

    The stream is decoded once from the start (at 2 fps most GOPs hold a target anyway); only the
    chosen frames are converted to RGB. A source slower than ``fps`` yields each of its frames
    once, so the actual rate is min(fps, source rate); timestamps say exactly when.
    """
    container = _open(path)
    with container:
        stream = _video_stream(container, path)
        duration = _duration(container, stream, path)
        start, step, next_t, last = _start(stream), 1.0 / fps, 0.0, None
        for frame in _decode(container, stream, path):
            last = frame.time - start
            if last >= next_t - 1e-6:
                yield last, _rgb(frame)
                # The next target strictly after this frame, so no frame is yielded twice.
                next_t += step * (math.floor((last - next_t) / step + 1e-6) + 1)
        _check_reached(path, duration - step, last, step)


def read_audio(path: str | Path, sample_rate: int = 16000) -> Audio:
    """The first audio track, resampled to ``sample_rate`` Hz mono float32 (PyAV's AudioResampler)."""
    container = _open(path)
    with container:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream (expected a file with an audio track)")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        except av.FFmpegError as exc:
            raise MediaError(f"{path}: corrupt or truncated audio, decoding failed ({exc})") from exc
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]  # flush
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if len(samples) == 0:
        raise MediaError(f"{path}: audio stream has zero duration (expected at least one sample)")
    return Audio(samples, sample_rate)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    keyframe_interval: float = 2.0,
    lossless: bool = False,
) -> Path:
    """Write an H.264 mp4 (yuv420p) with an optional AAC mono track.

    Args:
        frames: (T, H, W, 3) uint8 RGB, H and W even (yuv420p).
        fps: frames per second (a float is turned into an exact fraction).
        audio: (N,) float32 in [-1, 1] at ``sample_rate``, or None for a silent file.
        keyframe_interval: seconds between key frames; real videos use 1-10 s, which is what
            makes :func:`sample_frames`'s seeking worthwhile.
        lossless: x264's lossless mode (``qp=0``): the file decodes to exactly the YUV written,
            whatever rounding the encoder's search makes, so generated data is reproducible.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be non-empty (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        video.codec_context.gop_size = max(1, round(keyframe_interval * float(rate)))
        # One encoder thread: with several, x264's output for the same frames varied from run
        # to run under load, and generated benchmarks must be reproducible byte for byte.
        video.codec_context.thread_count = 1
        quality = {"qp": "0"} if lossless else {"crf": "18"}
        video.codec_context.options = {"preset": "veryfast", "threads": "1", **quality}
        if audio is not None:
            track = container.add_stream("aac", rate=sample_rate, layout="mono")
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(_yuv420p(image), format="yuv420p")))
        container.mux(video.encode())
        if audio is not None:
            samples = np.asarray(audio, dtype=np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = sample_rate
            # AAC takes fixed-size frames; a resampler to the encoder's own format re-chunks them.
            resampler = av.AudioResampler(
                format=track.format,
                layout="mono",
                rate=sample_rate,
                frame_size=track.codec_context.frame_size,
            )
            for chunk in resampler.resample(frame) + resampler.resample(None):
                container.mux(track.encode(chunk))
            container.mux(track.encode())
    return path


def _yuv420p(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H * 3 / 2, W) planar YUV 4:2:0 (BT.601, limited range).

    Done in numpy rather than by FFmpeg's threaded scaler, whose output for the same frame
    varied from run to run under load, so that written videos are reproducible byte for byte.
    """
    rgb = image.astype(np.float32)
    y = rgb @ np.array([0.257, 0.504, 0.098], dtype=np.float32) + 16
    u = rgb @ np.array([-0.148, -0.291, 0.439], dtype=np.float32) + 128
    v = rgb @ np.array([0.439, -0.368, -0.071], dtype=np.float32) + 128
    h, w = y.shape
    u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    planes = [y.ravel(), u.ravel(), v.ravel()]
    return np.clip(np.rint(np.concatenate(planes)), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


# --- RGB-D scans in the ScanNet export layout -------------------------------------------------

def _read_matrix(path: Path, shape=(4, 4)) -> np.ndarray:
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read a {shape[0]}x{shape[1]} matrix of numbers ({exc})") from exc
    if values.size != shape[0] * shape[1]:
        raise MediaError(f"{path}: expected {shape[0] * shape[1]} numbers, found {values.size}")
    return values.reshape(shape)


def _read_image(path: Path, dtype) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB") if dtype == np.uint8 else image)
    except (OSError, UnidentifiedImageError) as exc:
        raise MediaError(f"{path}: corrupt or truncated image ({exc})") from exc
    if dtype != np.uint8 and array.ndim != 2:
        raise MediaError(f"{path}: expected a single-channel 16-bit depth PNG, got shape {array.shape}")
    return array


def read_scan(
    folder: str | Path,
    num_frames: int = 32,
    depth_scale: float = 1000.0,
    frame_rate: float = 30.0,
    axis_align: bool = True,
) -> Scan:
    """Read ``num_frames`` evenly spaced posed RGB-D frames from a scan folder laid out as
    ScanNet exports (and LLaVA-3D reads) it::

        color/<id>.jpg|png    depth/<id>.png (uint16)    pose/<id>.txt (4x4 camera-to-world)
        intrinsic/intrinsic_depth.txt (4x4)    axis_align_matrix.txt (4x4, optional)

    Frames whose pose has non-finite entries (ScanNet marks lost tracking with ``inf``) or whose
    depth/pose file is missing are skipped before sampling. A scan with fewer valid frames than
    ``num_frames`` yields all of them (no padding).

    Args:
        depth_scale: depth PNG units per metre (1000 for ScanNet/3RScan millimetres).
        frame_rate: capture rate used to turn frame ids into timestamps (ScanNet records at 30 Hz).
        axis_align: left-multiply poses by ``axis_align_matrix.txt`` when present, as LLaVA-3D does,
            so world coordinates are those of the scene's aligned mesh and annotations.
    """
    folder = Path(folder)
    if not (folder / "color").is_dir():
        raise MediaError(f"{folder}: not a scan folder (expected color/, depth/, pose/, intrinsic/)")
    intrinsics = _read_matrix(folder / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
    ids, poses = [], []
    for color in sorted(folder.glob("color/*")):
        if color.suffix.lower() not in IMAGE_SUFFIXES or not re.fullmatch(r"\d+", color.stem):
            continue
        pose_file, depth_file = folder / "pose" / f"{color.stem}.txt", folder / "depth" / f"{color.stem}.png"
        if not (pose_file.is_file() and depth_file.is_file()):
            continue
        pose = _read_matrix(pose_file)
        if np.isfinite(pose).all():
            ids.append((int(color.stem), color))
            poses.append(pose)
    if not ids:
        raise MediaError(f"{folder}: no frame with a colour image, depth PNG and finite pose")
    order = np.argsort([i for i, _ in ids], kind="stable")
    chosen = order[uniform_frame_indices(len(ids), min(num_frames, len(ids)))]
    poses = np.stack([poses[i] for i in chosen])
    align_file = folder / "axis_align_matrix.txt"
    if axis_align and align_file.is_file():
        poses = _read_matrix(align_file) @ poses
    frame_ids = np.array([ids[i][0] for i in chosen], dtype=np.int64)
    colors = np.stack([_read_image(ids[i][1], np.uint8) for i in chosen])
    depths = np.stack([_read_image(folder / "depth" / f"{ids[i][1].stem}.png", np.uint16) for i in chosen])
    return Scan(
        colors=colors,
        depths=depths.astype(np.float32) / depth_scale,
        poses=poses,
        intrinsics=intrinsics,
        frame_ids=frame_ids,
        timestamps=frame_ids / frame_rate,
    )
