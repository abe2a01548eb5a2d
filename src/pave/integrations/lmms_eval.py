"""lmms-eval model ``pave``: a base with saved patches, answering lmms-eval's own video tasks.

lmms-eval (0.7) finds out-of-tree models through the ``lmms_eval.models`` entry-point group;
``pyproject.toml`` declares ``pave`` there (:func:`pave.integrations.lmms_eval_models`), so once
pave is installed next to lmms-eval::

    lmms-eval --model pave --tasks videomme --log_samples --output_path eval/ \\
        --model_args patch=outputs/llava_video_7b,features=video=features/videomme-video

The task keeps its prompt, generation length and scoring; the plugin only answers. Each question
goes through :class:`pave.inference.Answerer`, as in ``pave infer``: the video the task names
is decoded into the patches' key frames, and each side channel comes from a feature store
(``pave extract``), looked up by the video's path (:func:`store_keys`). A side channel that the
video itself holds (audio, dense video) and that has no store is encoded from the video with the
encoder the patch was trained on. Questions about the same video share its encoding.

model_args (comma-separated, as lmms-eval parses them):

==================  =========================================================================
``patch``           patch directories, stacked in the order given, joined by ``+``; none: the
                    base alone (then ``base`` is required)
``base``            base model id or path; default: the one the first patch records
``features``        ``channel=store_dir`` pairs joined by ``+`` (``audio=f/a+exo=f/e``)
``frames``          key frames per video; default: as the patches were trained, else 32
``dtype``           the base's dtype (``float32``, ``bfloat16``; default: bf16 on a GPU)
``device``          default: the GPU of this process (``LOCAL_RANK``) when there is one
``max_new_tokens``  overrides the task's generation length (default: the task's, else 64)
``batch_size``      accepted; answers are generated one at a time (``Answerer`` has no batch)
==================  =========================================================================

Decoding is greedy, as ``pave infer`` and the paper's evaluation; a task that asks for sampling
gets a warning. ``loglikelihood`` and multi-round generation are not supported (see there).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path, PurePath

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from pave.inference import load_for_inference
from pave.sidechannels import FeatureStore, SideChannel

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 64
LIST_SEPARATOR = "+"  # model_args are split on commas, so lists inside one value use this


def split_list(value) -> list[str]:
    """``a+b`` -> ``["a", "b"]``; lmms-eval turns a value that looks numeric into a number."""
    return [part for part in str(value).split(LIST_SEPARATOR) if part] if value not in (None, "") else []


def parse_features(value) -> dict[str, FeatureStore]:
    """``audio=f/a+exo=f/e`` -> side channel name -> its (existing) feature store."""
    stores: dict[str, FeatureStore] = {}
    for pair in split_list(value):
        channel, sep, path = pair.partition("=")
        if not sep or not channel or not path:
            raise ValueError(
                f"features: expected channel=store_dir pairs joined by {LIST_SEPARATOR!r}, got {pair!r}"
            )
        if channel in stores:
            raise ValueError(f"features: two stores for the {channel!r} side channel")
        stores[channel] = FeatureStore.existing(path, f"features for {channel!r}")
    return stores


def store_keys(video: str | Path) -> list[str]:
    """The ids a feature store may hold a video under, most specific first.

    ``pave extract`` over a folder keys each item by its path below that folder without the video
    suffix (``data/abc`` for ``<root>/data/abc.mp4``), and over an annotation file by the media
    name. lmms-eval hands over an absolute path inside its own cache, so every tail of the path is
    a candidate: without the suffix (videos), then with it (other media).
    """
    path = PurePath(video)
    parts = path.parts[1:] if path.anchor else path.parts
    stem = (*parts[:-1], PurePath(parts[-1]).stem) if path.suffix else parts
    tails = [stem[i:] for i in range(len(stem))] + [parts[i:] for i in range(len(parts))]
    return list(dict.fromkeys("/".join(tail) for tail in tails))


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """The text before the first of the task's stop sequences (lmms-eval's ``until``)."""
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text


class PaveModel(lmms):
    """The ``pave`` model of lmms-eval: see the module docstring for its ``model_args``."""

    def __init__(
        self,
        patch: str | None = None,
        base: str | None = None,
        features: str | None = None,
        frames: int | None = None,
        dtype: str | None = None,
        device: str | None = None,
        max_new_tokens: int | None = None,
        batch_size: int | str = 1,
    ) -> None:
        super().__init__()
        self.stores = parse_features(features)
        if device is None and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"  # one process per GPU under accelerate
        self.answerer = load_for_inference(
            split_list(patch),
            base=str(base) if base else None,
            num_frames=int(frames) if frames else None,
            device=device,
            dtype=dtype,
        )
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        needs = self.answerer.requirements
        unread = sorted(set(self.stores) - set(needs))
        if unread:
            raise ValueError(
                f"features given for {unread} but no patch reads them; the patches read {sorted(needs)}"
            )
        for name in sorted(set(needs) - set(self.stores)):
            logger.info("%s side channel: no feature store given, encoded from each video", name)
        if str(batch_size) not in ("1", "auto"):
            logger.warning(
                "batch_size=%s: pave answers one question at a time (Answerer has no batch)", batch_size
            )
        self._warned_sampling = False

    @property
    def device(self) -> torch.device:
        return self.answerer.device

    # ----------------------------------------------------------------- requests
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer each request greedily; questions about one video share its decoded, encoded frames."""
        jobs = [self._job(request) for request in requests]
        answers: list[str] = [""] * len(jobs)
        prepared_video, inputs = None, None
        order = sorted(range(len(jobs)), key=lambda i: str(jobs[i][0]))  # stable: same video, same order
        for i in tqdm(order, desc="pave answers", disable=self.rank != 0):
            video, question, max_new_tokens, until = jobs[i]
            if video != prepared_video:
                inputs = self.answerer.prepare(video, self.side_channels(video))
                prepared_video = video
            answers[i] = cut_at_stop(self.answerer.answer(inputs, question, max_new_tokens), until)
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(
            "the pave model generates answers (pave.inference.Answerer) and cannot score given "
            "continuations: tasks with output_type loglikelihood or multiple_choice are not supported; "
            "use a generate_until task (VideoMME, MVBench and MLVU are)"
        )

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(
            "the pave model answers one question per video (pave.inference.Answerer); multi-round "
            "tasks are not supported"
        )

    # ----------------------------------------------------------------- helpers
    def side_channels(self, video: Path) -> dict[str, SideChannel]:
        """Side channel name -> this video's features, from each channel's store."""
        side = {}
        for channel, store in self.stores.items():
            key = next((k for k in store_keys(video) if k in store), None)
            if key is None:
                raise KeyError(
                    f"no {channel} features for video {video} in the feature store {store.path} (no item id "
                    f"ends its path, with or without the suffix); extract them with `pave extract {channel} "
                    "--inputs DIR` over the folder that holds the task's videos"
                )
            side[channel] = store.get(key)
        return side

    def _job(self, request: Instance) -> tuple[Path, str, int, list[str]]:
        """(video, question, max_new_tokens, stop sequences) of one generate_until request."""
        context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
        where = f"task {task}, {split} doc {doc_id}"
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        if len(visuals) != 1 or not isinstance(visuals[0], (str, os.PathLike)):
            got = f"{len(visuals)} visuals" if len(visuals) != 1 else type(visuals[0]).__name__
            raise ValueError(
                f"{where}: the pave model answers about one video file or folder, the task gave {got}"
            )
        video = Path(visuals[0])
        if not video.exists():
            raise FileNotFoundError(f"{where}: {video}: no such video")
        gen_kwargs = dict(gen_kwargs or {})
        if not self._warned_sampling and (
            gen_kwargs.get("do_sample") or float(gen_kwargs.get("temperature") or 0) > 0
        ):
            logger.warning("%s asks for sampling (%s); the pave model decodes greedily", task, gen_kwargs)
            self._warned_sampling = True
        max_new_tokens = self.max_new_tokens or int(
            gen_kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
        )
        until = gen_kwargs.get("until") or []
        return video, context, max_new_tokens, [until] if isinstance(until, str) else list(until)
