"""Answer questions about videos with saved patches: the library behind ``pave infer`` and ``pave demo``.

>>> from pave.inference import load_for_inference
>>> answerer = load_for_inference(["outputs/quickstart/pave"])     # base: as the patch records
>>> inputs = answerer.prepare("clip.mp4")          # the audio side channel comes from the video
>>> for piece in answerer.stream(inputs, "What instrument do you hear?"):
...     print(piece, end="", flush=True)
>>> answerer.save_heatmap(inputs, "attention.png")

:meth:`Answerer.prepare` decodes the key frames, runs the frozen vision tower once and gets every
side channel the active patches read: from given features (:func:`read_features`), or by
encoding the given media with the encoder the patch was trained with (``PatchConfig.side_encoder``).
The same prepared inputs then answer any number of questions. The patches' cross-attention does
not depend on the question, so neither does the heatmap.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pave.adapters import TokenAdapter
from pave.data.media import Frames
from pave.files import read_utf8
from pave.models.devices import resolve_device, resolve_dtype
from pave.models.patch_dir import PATCH_CONFIG_NAME, recorded_base
from pave.models.patched import PatchedModel
from pave.patch import PatchAttention
from pave.sidechannels.base import KINDS, SideChannel, SideChannelEncoder, get_encoder
from pave.tokens import SideInputs, VisualTokens

logger = logging.getLogger(__name__)

RECIPE_NAME = "recipe.yaml"

# Side media: a file or folder, or several files (exo views).
Media = str | Path | Sequence[str | Path]


class MissingSideChannel(ValueError):
    """A patch needs a side channel that was neither given nor found in the video itself."""

    def __init__(self, channel: str, patches: Sequence[str], encoder: str | None) -> None:
        self.channel = channel
        super().__init__(
            f"patch {', '.join(map(repr, patches))} needs the {channel!r} side channel"
            f"{f' (encoder {encoder})' if encoder else ''}: give its media or its extracted features"
        )


@dataclass
class SideRequirement:
    """A side channel the active patches read.

    Attributes:
        channel: its name in ``side`` (the patches' ``side_channel``, one of
            :data:`~pave.sidechannels.KINDS` for every built-in encoder).
        encoder: the encoder its training features came from, e.g. ``"builtin-logmel"``.
        dim: C_s, the token width the patches expect.
        patches: names of the patches that read it.
    """

    channel: str
    encoder: str | None
    dim: int
    patches: list[str] = field(default_factory=list)

    @property
    def in_video(self) -> bool:
        """Whether the signal is part of the main video file (its audio track, its dense frames)."""
        return self.channel in ("audio", "video")


@dataclass
class Inputs:
    """One video, encoded once, with its side channels; ask it any number of questions.

    Attributes:
        video: the video file (or scan folder, for 3D QA).
        frames: key frames (T, H, W, 3) uint8 with their timestamps (T,).
        visual: the frozen base's visual tokens (1, T, h, w, C_v) and query features.
        side: side channel name -> tokens (T_s, s_h, s_w, C_s) with timestamps (T_s,).
        sources: side channel name -> where it came from (a media path or a features file).
    """

    video: Path
    frames: Frames
    visual: VisualTokens
    side: dict[str, SideChannel]
    sources: dict[str, str]

    def side_inputs(self, device: torch.device) -> dict[str, SideInputs]:
        """The side channels as a batch of one: tokens (1, T_s, s_h, s_w, C_s), timestamps (1, T_s)."""
        return {
            name: SideInputs(c.tokens[None].to(device), None, c.timestamps[None].to(device))
            for name, c in self.side.items()
        }


class Answerer:
    """A patched model with its processor, ready to answer questions about videos.

    Args:
        model: a :class:`~pave.models.PatchedModel` (patches and LoRA loaded, in eval mode).
        processor: its :class:`~pave.models.processor.VideoChatProcessor`.
        num_frames: key frames per video, as the patches were trained with (default: the base
            family's own).
        encoder_options: side channel name -> extra options of its encoder (e.g. ``{"audio":
            {"weights": "imagebind_huge.pth"}}``); vision-tower encoders get ``model=`` the base.
    """

    def __init__(
        self,
        model: PatchedModel,
        processor,
        num_frames: int | None = None,
        encoder_options: Mapping[str, dict] | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.num_frames = num_frames or model.family.default_frames
        self.encoder_options = dict(encoder_options or {})
        self._encoders: dict[str, SideChannelEncoder] = {}
        self._lock = threading.Lock()  # one generation at a time (the demo serves several users)

    @property
    def device(self) -> torch.device:
        return next(self.model.llava.parameters()).device

    @property
    def requirements(self) -> dict[str, SideRequirement]:
        """Side channel name -> what the active patches need of it."""
        needs: dict[str, SideRequirement] = {}
        for name in self.model.active_patches:
            config = self.model.patches[name].config
            channel = self.model.side_channel_of(name)
            if channel is None:  # an adapter that reads no side channel (pooling)
                continue
            need = needs.setdefault(channel, SideRequirement(channel, config.side_encoder, config.side_dim))
            need.patches.append(name)
        return needs

    # ----------------------------------------------------------------- inputs
    def prepare(self, video: str | Path, side: Mapping[str, SideChannel | Media] | None = None) -> Inputs:
        """Decode and encode one video and get the side channels of every active patch.

        Args:
            video: a video file, or a scan folder (its colour images are the key frames).
            side: side channel name -> extracted features (:class:`SideChannel`) or media to
                encode (a file, a folder, or a list of exo-view videos). Audio and dense video
                default to the video file itself, 3D to the video when it is a scan folder.
        Raises:
            MissingSideChannel: a patch's side channel was not given and is not in the video.
        """
        from pave.data.keyframes import key_frames

        video = Path(video)
        side = dict(side or {})
        unknown = sorted(set(side) - set(self.requirements))
        if unknown:
            logger.warning("side channel(s) %s given but no active patch reads them; ignored", unknown)
        channels, sources = {}, {}
        for name, need in self.requirements.items():
            given = side.get(name)
            if given is None and (need.in_video or (name == "3d" and video.is_dir())):
                given = video
            if given is None:
                raise MissingSideChannel(name, need.patches, need.encoder)
            if isinstance(given, SideChannel):
                channels[name], sources[name] = self._check(need, given), "features"
            else:
                channels[name] = self._check(need, self.encoder(name).encode(given))
                sources[name] = str(given) if isinstance(given, (str, Path)) else ", ".join(map(str, given))
        frames = key_frames(video, self.num_frames)
        pixels = self.processor.preprocessor(frames.frames)[None].to(self.device)
        times = torch.as_tensor(frames.timestamps, dtype=torch.float32)[None].to(self.device)
        visual = self.model.encode_video(pixels, times)
        return Inputs(video, frames, visual, channels, sources)

    def encoder(self, channel: str) -> SideChannelEncoder:
        """The encoder the patches reading ``channel`` were trained on (built once).

        ``PatchConfig.side_encoder`` names it as ``<backend>-<model>`` (``builtin-logmel``,
        ``imagebind-huge``, ``builtin-<vision tower>``); the back-end is looked up in
        :mod:`pave.sidechannels`' registry, and vision-tower encoders get the base model.
        """
        if channel not in self._encoders:
            need = self.requirements[channel]
            if channel not in KINDS:
                raise ValueError(
                    f"side channel {channel!r} has no built-in encoder (kinds: {KINDS}); give extracted features"
                )
            backend = need.encoder.split("-", 1)[0] if need.encoder else "builtin"
            options = {} if channel == "audio" or backend != "builtin" else {"model": self.model.base_name}
            options.update(self.encoder_options.get(channel, {}))
            try:
                encoder = get_encoder(channel, backend, **options)
            except (ImportError, FileNotFoundError, ValueError) as exc:
                raise ValueError(
                    f"cannot encode the {channel!r} side channel as the patch was trained ({need.encoder}): "
                    f"{exc}. Extract the features with `pave extract` and give them instead."
                ) from exc
            if need.encoder and encoder.name != need.encoder:
                logger.warning(
                    "%s side channel: the patch was trained on %s features, encoding with %s",
                    channel,
                    need.encoder,
                    encoder.name,
                )
            self._encoders[channel] = encoder
        return self._encoders[channel]

    @staticmethod
    def _check(need: SideRequirement, channel: SideChannel) -> SideChannel:
        if channel.dim != need.dim:
            raise ValueError(
                f"{need.channel} side channel has {channel.dim}-d tokens ({channel.encoder}) but patch "
                f"{need.patches[0]!r} expects {need.dim}-d ({need.encoder})"
            )
        if need.encoder and channel.encoder != need.encoder:
            logger.warning(
                "%s features come from %s, the patch was trained on %s",
                need.channel,
                channel.encoder,
                need.encoder,
            )
        return channel

    # ----------------------------------------------------------------- answers
    def stream(self, inputs: Inputs, question: str, max_new_tokens: int = 64) -> Iterator[str]:
        """Yield the answer's text as it is generated (greedy decoding)."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with self._lock:
                    self._generate(inputs, question, max_new_tokens, streamer=streamer)
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=generate, name="pave-generate", daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if failure:
            raise failure[0]

    def answer(self, inputs: Inputs, question: str, max_new_tokens: int = 64) -> str:
        """The whole answer at once."""
        with self._lock:
            ids = self._generate(inputs, question, max_new_tokens)
        return self.processor.decode(ids)[0]

    @torch.no_grad()
    def _generate(
        self, inputs: Inputs, question: str, max_new_tokens: int, **generate_kwargs
    ) -> torch.Tensor:
        frames = self.processor.layout.key_frames(inputs.visual.tokens.shape[1])
        batch = self.processor([question], num_frames=frames, padding_side="left")
        return self.model.generate(
            batch["input_ids"].to(self.device),
            batch["attention_mask"].to(self.device),
            visual=inputs.visual,
            side=inputs.side_inputs(self.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            **generate_kwargs,
        )

    # ----------------------------------------------------------------- attention
    @property
    def has_heatmap(self) -> bool:
        """Whether an active patch has a cross-attention to draw (PAVE patches do, adapters not)."""
        return any(not isinstance(self.model.patches[n], TokenAdapter) for n in self.model.active_patches)

    @torch.no_grad()
    def attention(self, inputs: Inputs) -> dict[str, PatchAttention]:
        """Patch name -> its cross-attention weights on these inputs (see :mod:`pave.viz`)."""
        _, attention = self.model.patched_tokens(
            inputs.visual, inputs.side_inputs(self.device), return_attention=True
        )
        return attention

    def save_heatmap(
        self,
        inputs: Inputs,
        path: str | Path,
        patch: str | None = None,
        key_frame: int | None = None,
        queries=None,
        layer: int | None = None,
        head: int | None = None,
        size: tuple[int, int] = (1200, 480),
    ) -> Path:
        """Draw a patch's cross-attention for one key frame (default: the middle one) as a PNG.

        ``queries`` are query tokens of the key frame (flat indices or (row, column) pairs of
        the visual-token grid; default: all of them); ``layer``/``head`` pick one instead of
        the average. See :func:`pave.viz.save_heatmap` for the layout.
        """
        from pave import viz

        attention = self.attention(inputs)
        if not attention:
            raise ValueError(
                "no active PAVE patch: there is no temporal cross-attention to draw "
                "(adapters such as interleave, qformer and pooling have none)"
            )
        patch = patch or next(iter(attention))
        if patch not in attention:
            raise KeyError(f"no active patch named {patch!r}; active: {sorted(attention)}")
        channel = self.model.side_channel_of(patch)
        grid = tuple(inputs.visual.tokens.shape[2:4])
        key_frame = inputs.visual.tokens.shape[1] // 2 if key_frame is None else key_frame
        reduce = dict(queries=queries, layer=layer, head=head)
        timestamps = inputs.side[channel].timestamps
        window = viz.window_attention(attention[patch], key_frame, grid, side_timestamps=timestamps, **reduce)
        matrix = (
            viz.frame_attention(attention[patch], grid, side_timestamps=timestamps, **reduce) if window.temporal else None
        )
        title = f"patch {patch!r} ({channel}): cross-attention of key frame {key_frame}, {inputs.video.name}"
        return viz.save_heatmap(
            path,
            window,
            key_image=inputs.frames.frames[self.processor.layout.key_frames(key_frame)],
            matrix=matrix,
            size=size,
            title=title,
        )


def read_features(path: str | Path, item_id: str | None = None) -> SideChannel:
    """Extracted side-channel features: one item file of a feature store
    (``STORE/items/<name>.safetensors``), or the item ``item_id`` of a store folder."""
    from pave.sidechannels.store import FeatureStore, read_item

    path = Path(path)
    if path.is_dir():
        if item_id is None:
            raise ValueError(
                f"{path} is a feature store: name the item (one of its ids, e.g. the video's name)"
            )
        return FeatureStore(path).get(item_id)
    if item_id is not None:
        raise ValueError(f"{path} is one item file; an item id goes with a feature-store folder")
    return read_item(path)


@dataclass
class Question:
    """A question about a video, with the side signals given for it (see :meth:`Answerer.prepare`)."""

    video: Path
    question: str
    side: dict[str, SideChannel | Media] = field(default_factory=dict)
    id: str | None = None


def side_signals(
    audio: str | Path | None = None,
    scan: str | Path | None = None,
    exo: Sequence[str | Path] | None = None,
    features: Sequence[str | Path] = (),
    feature_id: str | None = None,
) -> dict[str, SideChannel | Media]:
    """Side channel name -> signal, from media given by kind and from extracted features (each
    feature file or store names its own kind)."""
    side: dict[str, SideChannel | Media] = {}
    for name, media in (("audio", audio), ("3d", scan), ("exo", exo)):
        if media:
            side[name] = media if isinstance(media, (str, Path)) else [Path(m) for m in media]
    for path in features:
        channel = read_features(path, feature_id)
        if channel.kind in side:
            raise ValueError(f"two signals for the {channel.kind!r} side channel (the last: {path})")
        side[channel.kind] = channel
    return side


def read_questions(path: str | Path) -> list[Question]:
    """Questions from a JSONL file, one object per line: ``{"video": ..., "question": ...}`` with
    optional ``"id"``, ``"audio"``, ``"scan"``, ``"exo"`` (a list), ``"side"`` (a features file
    or store, or a list of them) and ``"side_id"``. Relative paths are relative to the file."""
    path = Path(path)
    known = {"id", "video", "question", "audio", "scan", "exo", "side", "side_id"}
    questions = []
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err})") from None
        if not isinstance(record, dict) or not {"video", "question"} <= set(record):
            raise ValueError(f'{where}: expected an object with "video" and "question"')
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")

        def resolve(value):
            return path.parent / value if isinstance(value, str) else [path.parent / v for v in value]

        features = record.get("side") or []
        side = side_signals(
            audio=record.get("audio") and resolve(record["audio"]),
            scan=record.get("scan") and resolve(record["scan"]),
            exo=record.get("exo") and resolve(record["exo"]),
            features=resolve([features] if isinstance(features, str) else features),
            feature_id=record.get("side_id"),
        )
        questions.append(Question(resolve(record["video"]), str(record["question"]), side, record.get("id")))
    return questions


def load_for_inference(
    patches: Iterable[str | Path],
    base: str | None = None,
    num_frames: int | None = None,
    system_prompt: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    encoder_options: Mapping[str, dict] | None = None,
) -> Answerer:
    """Load saved patches (stacked in the order given) on their base, with its processor.

    Args:
        patches: patch directories (``PatchedModel.save_pretrained`` / ``pave train`` output);
            none for the base model alone (then ``base`` is required).
        base: base model id or path; default: the one the first patch records.
        num_frames, system_prompt: default: as the patches were trained (``recipe.yaml`` saved
            beside the first patch that has one), else the base family's frames and no system prompt.
        device: default CUDA when available, else CPU.
        dtype: the base's weights' dtype (``"auto"``/``None``: bfloat16 on a GPU, else float32).
    """

    from pave.models.processor import VideoChatProcessor
    from pave.recipes import load_recipe

    dirs = [Path(p) for p in patches]
    if not dirs and not base:
        raise ValueError("give at least one patch directory, or a base model")
    base = base or recorded_base(dirs[0])
    recipes = [load_recipe(d / RECIPE_NAME) for d in dirs if (d / RECIPE_NAME).is_file()]
    if recipes:
        num_frames = num_frames or recipes[0].model.num_frames
        system_prompt = system_prompt if system_prompt is not None else recipes[0].data.system_prompt
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    model = PatchedModel.from_pretrained(dirs, base=base, dtype=dtype) if dirs else PatchedModel.from_base(base, dtype=dtype)
    model.to(device)
    processor = VideoChatProcessor.from_pretrained(base, model, system_prompt)
    logger.info("loaded patch(es) %s on %s (%s)", model.active_patches, base, device)
    return Answerer(model, processor, num_frames, encoder_options)


def find_patches(folder: str | Path) -> list[Path]:
    """Patch directories under ``folder`` (itself included), sorted."""
    folder = Path(folder)
    return sorted({p.parent for p in folder.rglob(PATCH_CONFIG_NAME) if "checkpoint-" not in p.parent.name})


__all__ = [
    "Answerer",
    "Inputs",
    "MissingSideChannel",
    "Question",
    "SideRequirement",
    "find_patches",
    "load_for_inference",
    "read_features",
    "read_questions",
    "side_signals",
]
