"""The visual-token cache: one file per video and window, exact on reuse, a batch of one on read."""

from types import SimpleNamespace

import numpy as np
import torch

from pave.batching import VisualTokenCache
from pave.data.keyframes import VideoRef, key_frames
from pave.data.media import write_video
from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor
from pave.tokens import VisualTokens


def test_cached_tokens_are_kept_per_window(tmp_path):
    video = write_video(tmp_path / "clip.mp4", np.zeros((60, 32, 32, 3), np.uint8), fps=10)
    cache = VisualTokenCache(tmp_path / "cache", SimpleNamespace(base_name="base"), SimpleNamespace(fingerprint="f"), 4)
    keys = {cache.path(VideoRef(video)), cache.path(VideoRef(video, (2.0, 4.0))), cache.path(VideoRef(video, (0.0, 2.0)))}
    assert len(keys) == 3
    assert cache.path(video) == cache.path(VideoRef(video))


def test_a_cached_video_reads_back_as_a_fresh_encode(tiny_model_dir, tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8)
    video = write_video(tmp_path / "clip.mp4", frames, fps=10)
    model = PatchedModel.from_base(str(tiny_model_dir)).eval()
    processor = VideoChatProcessor.from_pretrained(tiny_model_dir, model)
    cache = VisualTokenCache(tmp_path / "cache", model, processor.preprocessor, num_frames=3)
    cache.build([video])

    cached = cache.get(video)
    decoded = key_frames(video, 3)
    fresh = model.encode_video(processor.preprocessor(decoded.frames)[None])
    assert isinstance(cached, VisualTokens) and cached.tokens.shape[:2] == (1, 3)
    torch.testing.assert_close(cached.tokens, fresh.tokens, rtol=0, atol=0)
    torch.testing.assert_close(cached.query_features, fresh.query_features, rtol=0, atol=0)
    torch.testing.assert_close(cached.frame_times[0], torch.as_tensor(decoded.timestamps, dtype=torch.float32))
