import numpy as np
import pytest
import torch

from pave.data.media import write_video
from pave.sidechannels import get_encoder
from pave.sidechannels.audio import ClipSpec, clip_waveform, log_mel, require_imagebind


@pytest.mark.parametrize("seconds, clips", [(0.5, 1), (2.0, 1), (3.0, 2), (10.0, 9), (10.7, 9)])
def test_clip_count_follows_the_authors_rule(seconds, clips):
    # The authors' range(int(D) - 1) clips of 2 s every 1 s; at least one for short tracks.
    assert ClipSpec().num_clips(seconds) == clips


def test_clips_cover_the_waveform_with_centre_timestamps():
    samples = np.arange(16000 * 4, dtype=np.float32)
    clips, times = clip_waveform(samples, ClipSpec())
    assert clips.shape == (3, 32000)
    assert clips[1, 0] == 16000 and clips[2, -1] == samples[-1]
    torch.testing.assert_close(times, torch.tensor([1.0, 2.0, 3.0]))


def test_log_mel_peaks_at_the_tone():
    rate = 16000
    t = torch.arange(2 * rate) / rate
    mel = log_mel(torch.stack([torch.sin(2 * torch.pi * 1000 * t), torch.sin(2 * torch.pi * 4000 * t)]))
    assert mel.shape == (2, 128, 198)  # 1 + (32000 - 400) // 160 frames
    low, high = mel.mean(dim=2).argmax(dim=1).tolist()
    assert low < high  # the 4 kHz tone sits in a higher mel band than the 1 kHz one


def test_audio_tokens_one_per_second(tmp_path):
    rate, seconds = 16000, 6.4
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(rate * seconds))).astype(np.float32)
    path = write_video(tmp_path / "a.mp4", np.zeros((8, 16, 16, 3), np.uint8), 1, audio=audio)
    encoder = get_encoder("audio")
    channel = encoder.encode(path)
    assert channel.tokens.shape == (5, 1, 1, encoder.dim) and encoder.dim == 256
    assert channel.kind == "audio" and channel.encoder == "builtin-logmel"
    torch.testing.assert_close(channel.timestamps, torch.arange(1.0, 6.0))
    assert torch.equal(channel.tokens, encoder.encode(path).tokens)  # deterministic
    assert channel.tokens.abs().max() < 10  # normalised to O(1)


def test_imagebind_backend_explains_what_is_missing():
    try:
        require_imagebind()
    except ImportError as exc:
        assert "--backend builtin" in str(exc)
        with pytest.raises(ImportError, match="ImageBind"):
            get_encoder("audio", "imagebind", weights="imagebind_huge.pth")
    else:
        with pytest.raises(FileNotFoundError, match="--weights"):
            get_encoder("audio", "imagebind")


def test_unknown_backend():
    with pytest.raises(ValueError, match="available: \\['builtin', 'imagebind', 'released'\\]"):
        get_encoder("audio", "whisper")


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match=r"takes no option \['device'\]"):
        get_encoder("audio", device="cuda")
