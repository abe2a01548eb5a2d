"""Audio side channel, ImageBind protocol: 16 kHz mono, 2 s clips every 1 s, one token per clip.

Clip i covers [i * stride, i * stride + clip) seconds; a track of D seconds gives
``max(1, floor((D - clip) / stride) + 1)`` clips (the authors' ``range(int(D) - 1)`` for the
default 2 s / 1 s), so about one token per second. A clip running past the end is zero-padded.
Each token's timestamp is its clip's centre.

Back-ends:

* ``builtin`` (:class:`LogMelAudioEncoder`, no weights): per clip, the time mean and standard
  deviation of each of 128 log-mel bands, 256-d, standardised per token (zero mean, unit
  variance over its 256 numbers). These summarise spectral shape and its variation over the
  clip, which is what a patch needs to tell sounds apart; they carry no learned semantics. The
  standardisation matters: raw statistics are dominated by the fixed tilt of the spectrum, and
  a sound present in a few bands moves them by a few percent, too little for a patch to pick up
  in short training (measured on the quickstart benchmark); per token it also makes the
  features independent of recording gain. We do not
  project to ImageBind's 1024 dims: a fixed random projection adds no information, and the
  patch's own input mapping is a learned linear layer anyway.
* ``imagebind`` (:class:`ImageBindAudioEncoder`): ImageBind-Huge's audio embedding per clip
  (1024-d), as the paper. Needs ImageBind's code and weights (:func:`require_imagebind`).

Both read the same Kaldi-style filterbank (:func:`log_mel`), the front end ImageBind was trained on.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pave.data.media import read_audio
from pave.sidechannels.base import SideChannel, SideChannelEncoder, register

SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
# ImageBind's normalisation of log-mel inputs (AudioSet statistics; the std is doubled as in AST).
MEL_MEAN, MEL_STD = -4.268, 9.138


@dataclass
class ClipSpec:
    """How a waveform is cut into clips: lengths in seconds."""

    clip: float = 2.0
    stride: float = 1.0
    sample_rate: int = SAMPLE_RATE

    def num_clips(self, duration: float) -> int:
        return max(1, math.floor((duration - self.clip) / self.stride + 1e-9) + 1)


def clip_waveform(samples: np.ndarray, spec: ClipSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a mono waveform into overlapping clips.

    Args:
        samples: (N,) float32 at ``spec.sample_rate``.
    Returns:
        clips: (n, clip * sample_rate) float32, zero-padded past the end.
        timestamps: (n,) float32, the centre of each clip in seconds.
    """
    n = spec.num_clips(len(samples) / spec.sample_rate)
    length, hop = round(spec.clip * spec.sample_rate), round(spec.stride * spec.sample_rate)
    needed = (n - 1) * hop + length
    wave = torch.from_numpy(np.asarray(samples, dtype=np.float32))
    wave = torch.nn.functional.pad(wave, (0, max(0, needed - len(wave))))
    clips = wave.unfold(0, length, hop)[:n]
    timestamps = torch.arange(n, dtype=torch.float32) * spec.stride + spec.clip / 2
    return clips, timestamps


def _mel_banks(num_bins: int, n_fft: int, sample_rate: int, low: float = 20.0) -> torch.Tensor:
    """Kaldi's triangular filters, equally spaced on mel = 1127 ln(1 + f / 700), from ``low`` Hz
    to Nyquist; (num_bins, n_fft // 2 + 1), the Nyquist bin unused as in Kaldi."""

    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f) / 700.0)

    edges = np.linspace(mel(low), mel(sample_rate / 2), num_bins + 2)
    bins = mel(np.arange(n_fft // 2) * sample_rate / n_fft)  # (n_fft/2,)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0.0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return torch.from_numpy(np.pad(weights, ((0, 0), (0, 1)))).float()


def log_mel(
    clips: torch.Tensor, sample_rate: int = SAMPLE_RATE, num_bins: int = NUM_MEL_BINS
) -> torch.Tensor:
    """Kaldi-style log-mel filterbank (25 ms Hann frames every 10 ms, DC removal, pre-emphasis
    0.97, 512-point power spectrum, no dither) of a batch of clips, after removing each clip's
    mean as ImageBind does.

    Args:
        clips: (n, L) float32 waveforms.
    Returns:
        (n, num_bins, frames) natural-log mel energies, frames = 1 + (L - 400) // 160 at 16 kHz.
    """
    frame_len, hop = round(0.025 * sample_rate), round(0.010 * sample_rate)
    n_fft = 1 << (frame_len - 1).bit_length()
    x = clips - clips.mean(dim=1, keepdim=True)
    frames = x.unfold(1, frame_len, hop)  # (n, frames, frame_len)
    frames = frames - frames.mean(dim=2, keepdim=True)
    frames = torch.cat([frames[..., :1] * 0.03, frames[..., 1:] - 0.97 * frames[..., :-1]], dim=2)
    window = torch.hann_window(frame_len, periodic=False, dtype=frames.dtype)
    power = torch.fft.rfft(frames * window, n=n_fft).abs().pow(2)  # (n, frames, n_fft/2 + 1)
    energies = power @ _mel_banks(num_bins, n_fft, sample_rate).T
    return energies.clamp_min(torch.finfo(torch.float32).eps).log().transpose(1, 2)


@register("audio", "builtin")
class LogMelAudioEncoder(SideChannelEncoder):
    """Log-mel statistics per clip: tokens (T_s, 1, 1, 256) = [mean over time of each of the 128
    log-mel bands, their standard deviation over time], standardised per token. No weights;
    deterministic."""

    kind = "audio"
    name = "builtin-logmel"

    def __init__(self, clip: float = 2.0, stride: float = 1.0):
        self.spec = ClipSpec(clip=clip, stride=stride)

    @property
    def dim(self) -> int:
        return 2 * NUM_MEL_BINS

    def encode(self, item: str | Path) -> SideChannel:
        audio = read_audio(item, self.spec.sample_rate)
        clips, timestamps = clip_waveform(audio.samples, self.spec)
        mel = (log_mel(clips) - MEL_MEAN) / MEL_STD  # (T_s, 128, frames)
        tokens = torch.cat([mel.mean(dim=2), mel.std(dim=2)], dim=1)
        tokens = (tokens - tokens.mean(dim=1, keepdim=True)) / tokens.std(dim=1, keepdim=True).clamp_min(1e-6)
        return SideChannel(tokens[:, None, None, :], timestamps, self.kind, self.name)


def require_imagebind() -> None:
    """Raise ImportError with what to install when ImageBind's code is not importable."""
    if importlib.util.find_spec("imagebind") is None or importlib.util.find_spec("imagebind.models") is None:
        raise ImportError(
            "the 'imagebind' audio back-end needs Meta's ImageBind code, which is not installed. Install it "
            "from a checkout of facebookresearch/ImageBind (or the 'imagebind-unofficial' repack; the PyPI "
            "package named 'imagebind' is an empty placeholder); it needs torchvision and torchaudio. "
            "Then pass the imagebind_huge weights with --weights. Without it, use --backend builtin."
        )


def _load_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    # Meta ships a torch checkpoint; weights_only restricts unpickling to tensors and containers.
    return torch.load(path, map_location="cpu", weights_only=True)


@register("audio", "imagebind")
class ImageBindAudioEncoder(SideChannelEncoder):
    """ImageBind-Huge audio embedding of each clip: tokens (T_s, 1, 1, 1024), L2-normalised and
    scaled by ImageBind's fixed logit scale (its post-processor), as the authors stored them."""

    kind = "audio"
    name = "imagebind-huge"
    # ImageBind's audio input: 128 mel bands x 204 frames (2 s clips give 198, zero-padded).
    target_frames = 204

    def __init__(
        self, weights: str | Path | None = None, device: str = "cpu", clip: float = 2.0, stride: float = 1.0
    ):
        require_imagebind()
        if weights is None or not Path(weights).is_file():
            raise FileNotFoundError(
                f"the 'imagebind' audio back-end needs the imagebind_huge weights file (--weights); got {weights}"
            )
        from imagebind.models import imagebind_model

        self.spec = ClipSpec(clip=clip, stride=stride)
        self.device = torch.device(device)
        model = imagebind_model.imagebind_huge(pretrained=False)
        model.load_state_dict(_load_state_dict(Path(weights)), strict=True)
        self.model = model.eval().to(self.device)

    @property
    def dim(self) -> int:
        return 1024

    @torch.no_grad()
    def encode(self, item: str | Path) -> SideChannel:
        audio = read_audio(item, self.spec.sample_rate)
        clips, timestamps = clip_waveform(audio.samples, self.spec)
        mel = log_mel(clips)[..., : self.target_frames]
        mel = torch.nn.functional.pad(mel, (0, self.target_frames - mel.shape[-1]))
        mel = (mel - MEL_MEAN) / MEL_STD
        # (n, S=1 clip, 1 channel, 128, 204): ImageBind averages over S, so one clip each.
        out = self.model({"audio": mel[:, None, None].to(self.device)})["audio"]
        return SideChannel(out.float().cpu()[:, None, None, :], timestamps, self.kind, self.name)
