"""Media and extraction speed.

1. Sampling 32 key frames from a long low-resolution video: seeking to the key frame before
   each target (`sample_frames`) vs decoding every frame once.
2. Extraction throughput (items/s) of the built-in audio encoder through `extract`.

Run: python benchmarks/bench_media.py [--minutes 5] [--items 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from pave.data.media import sample_frames, uniform_frame_indices, write_video
from pave.sidechannels.extract import extract


def make_long_video(path: Path, minutes: float, fps: int = 30, side: int = 96) -> Path:
    """A moving gradient with noise, so the encoder cannot skip frames; key frame every 2 s."""
    n = int(minutes * 60 * fps)
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, side, dtype=np.float32)[None, :].repeat(side, 0)
    chunks = []
    for i in range(n):
        img = (np.roll(base, i, axis=1) + rng.normal(0, 8, (side, side))).clip(0, 255).astype(np.uint8)
        chunks.append(np.repeat(img[..., None], 3, axis=2))
    return write_video(path, np.stack(chunks), fps, keyframe_interval=2.0)


def decode_all(path: Path, num_frames: int) -> np.ndarray:
    """The baseline: decode every frame, keep the uniform ones."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        wanted = set(uniform_frame_indices(stream.frames, num_frames).tolist())
        kept = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in wanted]
    return np.stack(kept)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--items", type=int, default=40)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, PyAV {av.__version__}, {torch.get_num_threads()} torch threads")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = make_long_video(tmp / "long.mp4", args.minutes)
        assert np.array_equal(sample_frames(video, 32).frames, decode_all(video, 32))
        seek, full = best_of(lambda: sample_frames(video, 32)), best_of(lambda: decode_all(video, 32), 1)
        print(f"\n32 frames from a {args.minutes:g}-min 96x96 30 fps video (key frame every 2 s):")
        print(f"  seeking (sample_frames): {seek * 1000:8.1f} ms")
        print(f"  decoding every frame:    {full * 1000:8.1f} ms   ({full / seek:.1f}x slower)")

        media = tmp / "media"
        media.mkdir()
        rng = np.random.default_rng(1)
        for i in range(args.items):
            audio = (0.1 * rng.standard_normal(16000 * 60)).astype(np.float32)
            write_video(media / f"clip{i:03d}.mp4", np.zeros((60, 32, 32, 3), np.uint8), 1, audio=audio)
        print(f"\nbuilt-in audio extraction, {args.items} items of 60 s (59 tokens each):")
        for workers in (1, 2):
            summary = extract("audio", media, tmp / f"store{workers}", workers=workers, progress=False)
            assert summary.extracted == args.items
            print(f"  workers={workers}: {args.items / summary.seconds:6.1f} items/s ({summary.seconds:.2f} s)")


if __name__ == "__main__":
    main()
