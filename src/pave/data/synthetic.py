"""A synthetic audio-visual QA benchmark made of real media files, in Music-AVQA's format.

Each video shows one shape whose colour changes every segment (two 4 s segments by default, each
a different colour), and plays one pure tone of a low, medium or high pitch during exactly one
segment over faint noise. Each video gets three
questions, one per Music-AVQA modality:

- Visual: "what shape is the object?" -- the answer is only in the frames;
- Audio: "what pitch is the tone?" -- the answer is only in the audio;
- Audio-Visual: "what colour is the object while the tone sounds?" -- needs both, aligned in
  time, so it tests the patch's temporal alignment.

Videos are H.264 mp4 files with an AAC track written through PyAV; annotations follow
Music-AVQA's ``avqa-{split}.json`` schema, so :mod:`pave.data.datasets.music_avqa` loads them
and the benchmark's own scoring applies. Everything is a function of the seed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pave.data.media import write_video

logger = logging.getLogger(__name__)

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (235, 225, 40)}
SHAPES = ("circle", "square", "triangle")
PITCHES = {"low": 220.0, "medium": 660.0, "high": 1980.0}
# Music-AVQA's video folder for ids that do not start with a digit.
VIDEO_FOLDER = "MUSIC-AVQA-videos-Synthetic"
# Visual-only questions the tiny base model is pre-trained on (never the audio).
PRETRAIN_QUESTIONS = (
    ("Shape", "what shape is the object?", lambda f: f.shape),
    ("Colour", "what colour is the object at the start?", lambda f: f.colours[0]),
    ("Colour", "what colour is the object at the end?", lambda f: f.colours[-1]),
)
VOCABULARY = (*SHAPES, *PITCHES, *COLOURS)
QUESTIONS = {
    # modality: (type, template, answer vocabulary)
    "Visual": ("Shape", "what shape is the object?", SHAPES),
    "Audio": ("Pitch", "what pitch is the tone?", tuple(PITCHES)),
    "Audio-Visual": ("Colour", "what colour is the object while the tone sounds?", tuple(COLOURS)),
}


# Bumped whenever the same spec makes other files (2: lossless video), so old data is rewritten.
DATA_REVISION = 2


@dataclass
class SyntheticSpec:
    """Sizes of the benchmark. Defaults keep ``pave quickstart`` within minutes on a laptop CPU."""

    train_videos: int = 240
    test_videos: int = 60
    duration: float = 8.0
    segments: int = 2
    fps: int = 4
    size: int = 32
    sample_rate: int = 16000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.segments <= len(COLOURS):
            raise ValueError(f"SyntheticSpec.segments must be between 1 and {len(COLOURS)}, got {self.segments}")
        if self.size % 2:
            raise ValueError(f"SyntheticSpec.size must be even (H.264 yuv420p), got {self.size}")


@dataclass
class VideoFacts:
    """What one generated video shows and plays (the ground truth of its questions)."""

    video_id: str
    shape: str
    colours: list[str]
    tone_segment: int
    pitch: str


def generate(root: str | Path, spec: SyntheticSpec | None = None) -> dict[str, Path]:
    """Write videos and ``avqa-{train,test,pretrain}.json`` under ``root``; return the annotation
    paths. ``pretrain`` holds visual-only questions about the train videos, for the base model.

    An existing benchmark with the same spec is reused, so reruns cost nothing.
    """
    spec = spec or SyntheticSpec()
    root = Path(root)
    paths = {split: root / f"avqa-{split}.json" for split in ("train", "test", "pretrain")}
    spec_file = root / "spec.json"
    record = {"revision": DATA_REVISION, **asdict(spec)}
    if spec_file.exists() and json.loads(spec_file.read_text()) == record and all(p.exists() for p in paths.values()):
        logger.info("synthetic benchmark already in %s", root)
        return paths
    (root / VIDEO_FOLDER).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    pretrain = []
    for split, count in (("train", spec.train_videos), ("test", spec.test_videos)):
        records = []
        for i in tqdm(range(count), desc=f"synthetic {split} videos", unit="video"):
            facts = _draw(rng, f"syn_{split}_{i:05d}", spec)
            frames, audio = render(facts, spec, rng)
            write_video(
                root / VIDEO_FOLDER / f"{facts.video_id}.mp4", frames, spec.fps, audio, spec.sample_rate, lossless=True
            )
            for modality, answer in answers(facts).items():
                records.append(_record(facts.video_id, len(records), modality, QUESTIONS[modality][:2], answer))
            if split == "train":
                for qtype, template, answer_of in PRETRAIN_QUESTIONS:
                    pretrain.append(_record(facts.video_id, len(pretrain), "Visual", (qtype, template), answer_of(facts)))
                # Language pre-training in miniature: the base learns to say every answer word,
                # as a real LLM can, without learning what any sound means.
                word = VOCABULARY[i % len(VOCABULARY)]
                pretrain.append(_record(facts.video_id, len(pretrain), "Visual", ("Echo", f"say the word {word}."), word))
        paths[split].write_text(json.dumps(records, indent=1) + "\n")
    paths["pretrain"].write_text(json.dumps(pretrain, indent=1) + "\n")
    spec_file.write_text(json.dumps(record, indent=2) + "\n")
    return paths


def _record(video_id: str, question_id: int, modality: str, question: tuple[str, str], answer: str) -> dict:
    """One annotation record in Music-AVQA's schema (``anser`` is the official spelling)."""
    qtype, template = question
    return {
        "video_id": video_id,
        "question_id": question_id,
        "type": json.dumps([modality, qtype]),
        "question_content": template,
        "templ_values": "[]",
        "anser": answer,
    }


def answers(facts: VideoFacts) -> dict[str, str]:
    """The answer of each modality's question for one video."""
    return {"Visual": facts.shape, "Audio": facts.pitch, "Audio-Visual": facts.colours[facts.tone_segment]}


def _draw(rng: np.random.Generator, video_id: str, spec: SyntheticSpec) -> VideoFacts:
    names = list(COLOURS)
    return VideoFacts(
        video_id=video_id,
        shape=SHAPES[rng.integers(len(SHAPES))],
        # Distinct colours per segment: the colour during the tone cannot be guessed from the others.
        colours=[names[k] for k in rng.permutation(len(names))[: spec.segments]],
        tone_segment=int(rng.integers(spec.segments)),
        pitch=list(PITCHES)[rng.integers(len(PITCHES))],
    )


def render(facts: VideoFacts, spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, size, size, 3) uint8 and audio (N,) float32 of one video."""
    num_frames = int(spec.duration * spec.fps)
    seg_frames = num_frames / spec.segments
    size = spec.size
    radius = size * rng.uniform(0.25, 0.35)
    centre = size / 2 + rng.uniform(-size / 10, size / 10, size=2)
    drift = rng.uniform(-1.0, 1.0, size=2) * size / (4 * num_frames)  # the object moves slowly
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    frames = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        cy, cx = centre + drift * t
        mask = _shape_mask(facts.shape, yy - cy, xx - cx, radius)
        frames[t][mask] = COLOURS[facts.colours[min(int(t / seg_frames), spec.segments - 1)]]

    n = int(spec.duration * spec.sample_rate)
    time = np.arange(n) / spec.sample_rate
    audio = 0.02 * rng.standard_normal(n)
    seg = spec.duration / spec.segments
    start, end = facts.tone_segment * seg, (facts.tone_segment + 1) * seg
    on = (time >= start) & (time < end)
    ramp = np.clip(np.minimum(time - start, end - time) / 0.05, 0, 1)  # 50 ms fades, no clicks
    audio += on * ramp * 0.5 * np.sin(2 * np.pi * PITCHES[facts.pitch] * time)
    return frames, np.clip(audio, -1, 1).astype(np.float32)


def _shape_mask(shape: str, dy: np.ndarray, dx: np.ndarray, r: float) -> np.ndarray:
    if shape == "circle":
        return dy**2 + dx**2 <= r**2
    if shape == "square":
        return (np.abs(dy) <= 0.8 * r) & (np.abs(dx) <= 0.8 * r)
    # An upward triangle: below the two slanted edges, above the base.
    return (dy <= 0.8 * r) & (np.abs(dx) <= (dy + r) * 0.6)
