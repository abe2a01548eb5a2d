"""Key frames of a sample's video: evenly spaced over a video file, a folder of frame images or
a scan folder, within the window the question is about."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from pave.data.media import Frames, MediaError, read_frame_folder, read_scan, sample_frames


class VideoRef(NamedTuple):
    """Where a sample's key frames come from: a video file, a folder of frame images (read at
    ``frame_rate`` per second) or a scan folder, and the ``window`` (start, end) seconds the
    question is about, if any."""

    path: Path
    window: tuple[float, float] | None = None
    frame_rate: float | None = None

    @classmethod
    def of(cls, video: VideoRef | str | Path) -> VideoRef:
        """A reference as given, or the whole of a video file or folder given by its path."""
        return video if isinstance(video, VideoRef) else cls(Path(video))


def key_frames(video: VideoRef | str | Path, num_frames: int) -> Frames:
    """``num_frames`` evenly spaced key frames of a video file or frame folder (within its window),
    or of a scan folder's colour images (3D QA); a scan with fewer frames repeats some, so every
    sample has the same T."""
    ref = VideoRef.of(video)
    if not ref.path.is_dir():
        return sample_frames(ref.path, num_frames, ref.window)
    if not (ref.path / "color").is_dir():
        if ref.frame_rate is None:
            raise MediaError(f"{ref.path}: a folder of frames needs its frame rate (the sample's frame_rate)")
        return read_frame_folder(ref.path, num_frames, ref.frame_rate, ref.window)
    scan = read_scan(ref.path, num_frames)
    pick = np.linspace(0, len(scan.colors) - 1, num_frames).round().astype(int)
    return Frames(scan.colors[pick], scan.timestamps[pick])


