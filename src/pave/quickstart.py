"""`pave quickstart`: PAVE end to end on a laptop, on the synthetic audio-visual benchmark.

Steps: generate the benchmark (real mp4 files) -> extract the audio side channel with the
built-in encoder -> get the tiny base model (pre-trained on visual questions only, cached) ->
evaluate it zero-shot -> train LoRA without audio ("FT") -> train PAVE (patch + LoRA, with
audio) -> evaluate both -> print a table shaped like the paper's Table 1.

``methods`` picks any registered method (:mod:`pave.methods`), which adds the paper's ablations
(Table 4: PAVE with learnable queries, FT (interleave)) and the related systems' adapters (a
Video-LLaMA Q-Former, PLLaVA pooling), each trained with LoRA on the same data and counted the
same way, at the sizes the method registers for the tiny base.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import Trainer

from pave.batching import QACollator, QADataset
from pave.data.datasets.base import load_samples
from pave.data.synthetic import DATA_REVISION, SyntheticSpec, generate
from pave.evaluation.evaluate import evaluate
from pave.methods import Method, get_method
from pave.methods import methods as registered_methods
from pave.models.devices import resolve_device, resolve_dtype
from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor
from pave.models.tiny import TinySizes, save_tiny_model
from pave.recipes import Recipe, load_recipe
from pave.sidechannels.extract import extract
from pave.training.train import train
from pave.training.trainer import training_arguments

logger = logging.getLogger(__name__)

TASK = "music_avqa"
MODALITIES = {"visual": "Visual", "audio": "Audio", "audio_visual": "Audio-Visual"}
SYSTEM_PROMPT = "Answer the question about the video with one word."
# Bumped whenever the tiny base or its pre-training changes, so cached bases are not reused.
BASE_REVISION = 5
DEFAULT_METHODS = ("zero-shot", "ft", "pave")


@dataclass
class QuickstartSettings:
    """Everything a quickstart run depends on; ``fast()`` is the reduced run the tests use."""

    out: str = "outputs/quickstart"
    base: str | None = None  # a real base model's id or path; None = the tiny built-in base
    family: str = "llava-onevision"  # of the tiny built-in base (pave.models.families)
    dtype: str = "auto"  # of the base: auto = bfloat16 on a GPU, float32 on the CPU
    seed: int = 0
    num_frames: int = 8
    data: SyntheticSpec = field(default_factory=SyntheticSpec)
    sizes: TinySizes | None = None  # of the tiny base; None: its family's quickstart sizes
    pretrain_epochs: float = 15.0
    pretrain_lr: float = 2e-3
    epochs: float = 15.0
    learning_rate: float = 2e-3
    batch_size: int = 16
    lora_r: int = 16
    lora_alpha: int = 32
    # Method -> its patch.config: the sizes each method registers for the tiny base.
    configs: dict = field(default_factory=lambda: {m.name: dict(m.tiny) for m in registered_methods() if m.tiny})

    @classmethod
    def fast(cls, **overrides) -> QuickstartSettings:
        settings = cls(data=SyntheticSpec(train_videos=32, test_videos=8), pretrain_epochs=12.0, epochs=6.0)
        for key, value in overrides.items():
            setattr(settings, key, value)
        return settings


def cache_dir() -> Path:
    """Where the pre-trained tiny base is kept between runs (``$PAVE_CACHE`` or the XDG cache)."""
    root = os.environ.get("PAVE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pave"
    return Path(root)


def run(settings: QuickstartSettings, methods=DEFAULT_METHODS) -> dict:
    """Run the whole pipeline for ``methods`` (registered method names, rows in that order);
    returns (and writes to ``OUT/results.json``) the table's rows."""
    chosen = {}
    for name in methods:
        try:
            chosen.setdefault(name, get_method(name))
        except ValueError as exc:
            raise ValueError(f"quickstart: {exc}") from None
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    log_handler = logging.FileHandler(out / "quickstart.log", mode="w")
    log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    pave_logger = logging.getLogger("pave")
    level = pave_logger.level
    # The log file gets the progress messages even when the caller's logging is quieter.
    pave_logger.setLevel(min(pave_logger.getEffectiveLevel(), logging.INFO))
    pave_logger.addHandler(log_handler)
    try:
        return _run(settings, out, chosen)
    finally:
        pave_logger.removeHandler(log_handler)
        pave_logger.setLevel(level)
        log_handler.close()


def _run(settings: QuickstartSettings, out: Path, methods: dict[str, Method]) -> dict:
    torch.manual_seed(settings.seed)
    _forget_stale_results(settings, out)
    data_root = out / "data"
    steps = len(methods) + 3
    logger.info("[1/%d] synthetic audio-visual benchmark in %s", steps, data_root)
    annotations = generate(data_root, settings.data)
    logger.info("[2/%d] audio side channel (built-in log-mel encoder)", steps)
    audio_store = data_root / "features" / "audio"
    summary = extract("audio", data_root / "MUSIC-AVQA-videos-Synthetic", audio_store, progress=True)
    if summary.failed:
        raise RuntimeError(f"audio extraction failed for {len(summary.failed)} videos: {summary.failed}")
    logger.info("[3/%d] base model", steps)
    base = settings.base or str(_link_base(pretrained_tiny_base(settings, data_root, annotations["pretrain"]), out))

    def recipe(name: str, method: Method) -> Recipe:
        overrides = [
            f"model.base={base}",
            f"model.num_frames={settings.num_frames}",
            f"model.dtype={settings.dtype}",
            f"data.task={TASK}",
            f"data.annotations=[{annotations['train']}]",
            f"data.media_root={data_root}",
            f"data.features={{audio: {audio_store}}}",
            f"data.system_prompt={SYSTEM_PROMPT}",
            f"patch.method={method.name}",
            f"lora.r={settings.lora_r}",
            f"lora.alpha={settings.lora_alpha}",
            "lora.dropout=0.0",
            f"train.output_dir={out / name}",
            f"train.epochs={settings.epochs}",
            f"train.learning_rate={settings.learning_rate}",
            f"train.global_batch_size={settings.batch_size}",
            f"train.per_device_batch_size={settings.batch_size}",
            f"train.seed={settings.seed}",
            "train.save_steps=100000",
            "train.logging_steps=20",
            f"train.visual_cache_dir={out / 'visual-cache'}",
        ]
        recipe = load_recipe(None, overrides)
        recipe.patch.side_channel = "audio"
        recipe.patch.config = dict(settings.configs.get(method.name, {}))
        return recipe

    rows, trained = [], {}
    device = resolve_device()  # training goes there too (the Trainer's own choice)
    dtype = resolve_dtype(settings.dtype, device)
    for step, (name, method) in enumerate(methods.items(), start=4):
        if not method.trains:
            logger.info("[%d/%d] %s: evaluation of the base", step, steps, method.label)
            model = PatchedModel.from_base(base, dtype=dtype)
        else:
            logger.info("[%d/%d] %s: training, then evaluation", step, steps, method.label)
            trained[method.name] = train(recipe(name, method))
            model = PatchedModel.from_pretrained(trained[method.name], base=base, dtype=dtype)
        model.to(device)
        rows.append(_evaluate(name, method, model, base, settings, data_root, annotations, audio_store, out))
    results = {"settings": _jsonable(asdict(settings)), "patch_dir": str(trained.get("pave", "")), "rows": rows}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _link_base(cached: Path, out: Path) -> Path:
    """``OUT/base``: a link to the cached tiny base, where recipes such as ``tiny_audio`` look."""
    link = out / "base"
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        link.symlink_to(cached.resolve(), target_is_directory=True)
    logger.info("the pre-trained tiny base: %s (linked as %s)", cached, link)
    return cached


def _forget_stale_results(settings: QuickstartSettings, out: Path) -> None:
    """Runs resume (trained models and predictions are reused), but only for the same settings."""
    record = out / "settings.json"
    current = _jsonable(asdict(settings))
    if record.exists() and json.loads(record.read_text()) != current:
        logger.info("%s holds a run with other settings; starting its models and predictions afresh", out)
        runs = [n for m in registered_methods() if m.trains for n in (m.name, *m.aliases)]
        for stale in (*runs, *(f"{m}-work" for m in runs), "visual-cache"):  # -work: their checkpoints
            shutil.rmtree(out / stale, ignore_errors=True)
        for stale in out.glob("predictions_*.jsonl"):
            stale.unlink()
    record.write_text(json.dumps(current, indent=2) + "\n")


def _evaluate(name, method, model, base, settings, data_root, annotations, audio_store, out) -> dict:
    """Answer the test split, score it with Music-AVQA's protocol and count its cost."""
    processor = VideoChatProcessor.from_pretrained(base, model, SYSTEM_PROMPT)
    report = evaluate(
        model, processor, TASK, [annotations["test"]], data_root, out, {"audio": audio_store},
        num_frames=settings.num_frames, batch_size=settings.batch_size, max_new_tokens=4,
        visual_cache=out / "visual-cache", run_name=name.replace("-", "_"),
    )
    metrics, cost = report["metrics"], report["cost"]
    accuracy = {key: metrics.get(f"accuracy/modality={name}", 0.0) for key, name in MODALITIES.items()}
    accuracy["overall"] = metrics.get("accuracy", 0.0)
    return {
        "method": method.label,
        "accuracy": accuracy,
        "llm_tokens": cost["llm_tokens"],
        "tflops": cost["tflops_total"],
        "params_total": cost["params_total"],
        "params_trainable": cost["params_trainable"],
    }


def pretrained_tiny_base(settings: QuickstartSettings, data_root: Path, pretrain_annotations: Path) -> Path:
    """The tiny base of ``settings.family``, pre-trained (all weights) on visual questions only;
    cached by settings."""
    key = json.dumps(
        [BASE_REVISION, DATA_REVISION, settings.family, asdict(settings.data), asdict(settings.sizes) if settings.sizes else None, settings.seed, settings.num_frames, settings.pretrain_epochs, settings.pretrain_lr],
        sort_keys=True,
    )
    target = cache_dir() / f"quickstart-base-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if (target / "config.json").exists():
        logger.info("using the cached pre-trained base in %s", target)
        return target
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    save_tiny_model(scratch, family=settings.family, sizes=settings.sizes, seed=settings.seed)
    model = PatchedModel.from_base(str(scratch), dtype=torch.float32)  # the same base on a GPU or a CPU
    model.llava.requires_grad_(True)  # pre-training: every weight of the base learns
    processor = VideoChatProcessor.from_pretrained(scratch, model, SYSTEM_PROMPT)
    samples = load_samples(TASK, [pretrain_annotations])
    dataset = _InMemory(QADataset(samples, data_root, settings.num_frames))
    recipe = load_recipe(
        None,
        [
            f"train.output_dir={scratch / 'trainer'}",
            f"train.epochs={settings.pretrain_epochs}",
            f"train.learning_rate={settings.pretrain_lr}",
            f"train.global_batch_size={settings.batch_size}",
            f"train.per_device_batch_size={settings.batch_size}",
            f"train.seed={settings.seed}",
            "train.logging_steps=20",
        ],
    )
    args = training_arguments(recipe.train, save_strategy="no")
    Trainer(model=model, args=args, train_dataset=dataset, data_collator=QACollator(processor)).train()
    model.llava.save_pretrained(scratch)
    shutil.rmtree(recipe.train.checkpoint_dir, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(scratch, target)  # tokenizer and preprocessor files came with save_tiny_model
    return target


class _InMemory(Dataset):
    """Decode each item once: pre-training trains the vision tower, so frames, not tokens, are
    fed every epoch, and decoding the same mp4 again each epoch would dominate the run."""

    def __init__(self, inner: Dataset) -> None:
        self.inner = inner
        self.items: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict:
        if index not in self.items:
            self.items[index] = self.inner[index]
        return self.items[index]


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def format_table(rows: list[dict]) -> str:
    """The results as a markdown table shaped like the paper's Tables 1 and 4."""
    lines = [
        "| Method | Visual Acc. | Audio Acc. | Audio-Visual Acc. | Overall Acc. | LLM tokens | TFLOPs | Total / Trainable Params |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        acc = row["accuracy"]
        tflops = f"{row['tflops']:.2e}"
        lines.append(
            f"| {row['method']} | {acc['visual']:.1f} | {acc['audio']:.1f} | {acc['audio_visual']:.1f} | "
            f"{acc['overall']:.1f} | {row['llm_tokens']} | {tflops} | {_human(row['params_total'])} / {_human(row['params_trainable']) if row['params_trainable'] else '-'} |"
        )
    return "\n".join(lines)


def _human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
