"""`pave demo`: a Gradio app to try saved patches on your own videos.

Upload a video (and its side signal where the video does not hold it), pick the patches to stack,
ask; the answer streams in, and the first patch's cross-attention heatmap for the middle key frame
appears beside it. Everything runs through :mod:`pave.inference`, as ``pave infer`` does.

Gradio is an optional extra: ``pip install 'pave-patches[demo]'``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pave.inference import Answerer, MissingSideChannel, SideRequirement, load_for_inference, read_features

logger = logging.getLogger(__name__)

FEATURES_SUFFIX = ".safetensors"
# Side channels whose media can be uploaded as files (3D scans are folders: upload features).
UPLOADABLE = ("audio", "exo")


def require_gradio():
    """The ``gradio`` module, or an ImportError saying how to install it."""
    try:
        import gradio
    except ImportError:
        raise ImportError(
            "the demo needs Gradio, which is not installed: pip install 'pave-patches[demo]'"
        ) from None
    return gradio


def side_from_uploads(requirements: Mapping[str, SideRequirement], files: Sequence[str | Path]) -> dict:
    """Uploaded files -> the ``side`` argument of :meth:`~pave.inference.Answerer.prepare`.

    Feature files (``.safetensors`` items of a feature store) name their own side channel; other
    files are media of the one uploadable side channel the patches read (an audio file, or every
    exo-view video).
    """
    files = [Path(f) for f in files]
    side: dict = {}
    for path in (f for f in files if f.suffix == FEATURES_SUFFIX):
        channel = read_features(path)
        side[channel.kind] = channel
    media = [f for f in files if f.suffix != FEATURES_SUFFIX]
    if media:
        targets = [name for name in requirements if name in UPLOADABLE and name not in side]
        if len(targets) != 1:
            raise ValueError(
                f"cannot tell which side channel the uploaded {[f.name for f in media]} are for: the patches "
                f"read {sorted(requirements) or 'none'}; upload extracted features (.safetensors) instead"
            )
        side[targets[0]] = media if targets[0] == "exo" else media[0]
    return side


class _Answerers:
    """Loaded models by the patch selection; the last ``keep`` selections stay in memory."""

    def __init__(self, load, keep: int = 2) -> None:
        self.load = load
        self.keep = keep
        self.loaded: dict[tuple[Path, ...], Answerer] = {}
        self.lock = threading.Lock()

    def get(self, patches: Sequence[Path]) -> Answerer:
        key = tuple(patches)
        with self.lock:
            if key not in self.loaded:
                self.loaded[key] = self.load(list(key))
                while len(self.loaded) > self.keep:
                    del self.loaded[next(iter(self.loaded))]
            return self.loaded[key]


def patch_labels(patches: Sequence[str | Path]) -> dict[str, Path]:
    """Short, unique names for patch directories (the last path parts that tell them apart)."""
    paths = [Path(p) for p in patches]
    for depth in range(1, max((len(p.parts) for p in paths), default=1) + 1):
        labels = {"/".join(p.parts[-depth:]): p for p in paths}
        if len(labels) == len(paths):
            return labels
    return {str(p): p for p in paths}


def build_app(
    patches: Sequence[str | Path],
    base: str | None = None,
    max_new_tokens: int = 64,
    device: str | None = None,
    dtype: str | None = None,
    examples: Sequence[tuple[str | Path, str]] = (),
):
    """The Gradio ``Blocks`` of the demo over these patch directories (nothing loads until asked).

    Args:
        patches: patch directories the user can pick from (the first is selected).
        base: base model for every patch (default: the one each selection's first patch records).
        device, dtype: where and in which dtype the models run (see :func:`load_for_inference`).
        examples: (video, question) pairs offered under the form, one click to fill it in.
    """
    gr = require_gradio()
    labels = patch_labels(patches)
    if not labels:
        raise ValueError("the demo needs at least one patch directory")
    answerers = _Answerers(lambda dirs: load_for_inference(dirs, base=base, device=device, dtype=dtype))
    heatmaps = Path(tempfile.mkdtemp(prefix="pave-demo-"))

    def selection(chosen: Sequence[str] | str | None) -> list[Path]:
        chosen = [chosen] if isinstance(chosen, str) else list(chosen or [])
        if not chosen:
            raise gr.Error("Pick at least one patch.")
        return [labels[name] for name in chosen]

    def describe(chosen) -> str:
        from pave.models.patch_dir import read_patch_config

        lines = []
        for path in selection(chosen):
            config = read_patch_config(path)[0]
            if not config.uses_side:
                lines.append(f"- `{path.name}` reads no side channel")
                continue
            channel = config.side_channel or "?"
            where = "from the video itself" if channel in ("audio", "video") else "upload it"
            lines.append(
                f"- `{path.name}` reads the **{channel}** side channel ({config.side_encoder}; {where})"
            )
        return "\n".join(lines)

    def respond(video, files, chosen, question) -> Iterator[tuple[str, str, str | None]]:
        if not video:
            raise gr.Error("Upload a video first.")
        if not (question or "").strip():
            raise gr.Error("Type a question.")
        start = time.perf_counter()
        yield "", "Loading the patches and encoding the video…", None
        try:
            answerer = answerers.get(selection(chosen))
        except (ValueError, FileNotFoundError, KeyError, ImportError) as exc:
            raise gr.Error(f"Could not load the selected patches: {exc}. Pick other patches, or fix that directory.") from None
        try:
            side = side_from_uploads(answerer.requirements, [getattr(f, "name", f) for f in files or []])
            inputs = answerer.prepare(video, side)
        except MissingSideChannel as exc:
            raise gr.Error(f"{exc}: upload it (or its .safetensors features) under 'Side signal'.") from None
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        text = ""
        for piece in answerer.stream(inputs, question, max_new_tokens):
            text += piece
            yield text, "Answering…", None
        heatmap = (
            str(answerer.save_heatmap(inputs, heatmaps / f"heatmap-{uuid.uuid4().hex}.png"))
            if answerer.has_heatmap
            else None
        )
        used = ", ".join(f"{name} ← {Path(src).name}" for name, src in inputs.sources.items()) or "none"
        status = f"Answered in {time.perf_counter() - start:.1f} s. Side channels: {used}."
        if heatmap is None:
            status += " No heatmap: the selected adapters have no temporal cross-attention."
        yield text.strip() or "(the model gave an empty answer)", status, heatmap

    with gr.Blocks(title="PAVE demo", analytics_enabled=False) as app:
        gr.Markdown(
            "## PAVE: patched video LLM\n"
            "Upload a video, pick the patches, ask. The heatmap shows how the first patch's "
            "cross-attention spreads over the side channel for the middle key frame."
        )
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], height=260, elem_id="video")
                side = gr.File(
                    label="Side signal (only where the video does not hold it): an audio file, the exo-view "
                    "videos, or extracted features (.safetensors)",
                    file_count="multiple",
                    height=110,
                    elem_id="side",
                )
                first = next(iter(labels))
                chosen = gr.Dropdown(
                    choices=list(labels),
                    value=[first],
                    multiselect=True,
                    label="Patches (stacked)",
                    elem_id="patches",
                )
                needs = gr.Markdown(describe([first]), elem_id="needs")
                question = gr.Textbox(label="Question", placeholder="What do you hear?", elem_id="question")
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Column():
                answer = gr.Textbox(label="Answer", lines=2, interactive=False, elem_id="answer")
                status = gr.Markdown(elem_id="status")
                heatmap = gr.Image(label="Cross-attention heatmap", type="filepath", elem_id="heatmap")
        if examples:
            gr.Examples([[str(v), q] for v, q in examples], inputs=[video, question], label="Examples (click to fill in)")
        chosen.change(describe, chosen, needs)
        ask.click(respond, [video, side, chosen, question], [answer, status, heatmap])
        question.submit(respond, [video, side, chosen, question], [answer, status, heatmap])
    return app


def launch(
    patches: Sequence[str | Path],
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
    **options,
):
    """Build and serve the demo on ``host:port`` (``options`` go to :func:`build_app`); with
    ``block=False`` it returns the running app (call ``.close()`` to stop it)."""
    app = build_app(patches, **options)
    app.queue().launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True)
    logger.info("PAVE demo on http://%s:%s (Ctrl+C stops it)", host, app.server_port)
    if block:
        app.block_thread()
    return app
