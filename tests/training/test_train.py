"""Training on the tiny model: loss falls, base frozen, small checkpoints, exact resume, DDP."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pave import recipes
from pave.models.patched import PatchedModel
from pave.recipes import load_recipe
from pave.training.train import train

SRC = str(Path(__file__).resolve().parents[2] / "src")


def overrides(tiny_model_dir, bench, out, *extra):
    return [
        f"model.base={tiny_model_dir}",
        f"data.annotations=[{bench['train']}]",
        f"data.media_root={bench['root']}",
        f"data.features={{audio: {bench['audio']}}}",
        f"train.output_dir={out}",
        *extra,
    ]


def run_cli(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pave.cli", *args], env=env, **kwargs)


def work(out: Path) -> Path:
    """Where a run keeps its checkpoints (train.work_dir's default), apart from what it ships."""
    return out.with_name(out.name + "-work")


def trained_weights(out: Path) -> dict[str, torch.Tensor]:
    return {**load_file(out / "patch.safetensors"), **load_file(out / "adapter_model.safetensors")}


def test_tiny_recipe_trains_loss_falls_base_frozen(tiny_model_dir, synthetic_bench, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(recipes.find("tiny_audio"), overrides(tiny_model_dir, synthetic_bench, out, "train.max_steps=12"))
    train(recipe)
    state = json.loads((work(out) / "checkpoint-12" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3]), losses
    # Checkpoints hold the patch and LoRA only, never the frozen base.
    files = {p.name for p in (work(out) / "checkpoint-12").iterdir()}
    assert {"patch.safetensors", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt"} <= files
    assert "model.safetensors" not in files
    # The base weights on disk are untouched, and the trained model loads on top of them.
    model = PatchedModel.from_pretrained(out)
    base = PatchedModel.from_base(str(tiny_model_dir)).llava.state_dict()
    for key, value in model.llava.state_dict().items():
        if "lora_" not in key:
            plain = key.replace("base_layer.", "")
            assert torch.equal(value, base[plain]), key
    assert model.patches["audio"].output_norm.weight.abs().sum() > 0
    # What ships is the patch alone: checkpoints and the visual-token cache stay in the work folder.
    shipped = {p.name for p in out.iterdir()}
    assert shipped - {"README.md"} == {  # peft may add its model card
        "patch_config.json", "patch.safetensors", "adapter_config.json", "adapter_model.safetensors", "recipe.yaml",
    }
    assert (work(out) / "visual-cache").is_dir()


def test_killed_run_resumes_to_the_same_weights(tiny_model_dir, synthetic_bench, tmp_path):
    args = ["train", "tiny_audio", "train.save_total_limit=null"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_cli(args + overrides(tiny_model_dir, synthetic_bench, straight), stderr=subprocess.DEVNULL).wait(timeout=300)

    proc = run_cli(args + overrides(tiny_model_dir, synthetic_bench, killed), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (work(killed) / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "patch.safetensors").exists()
    resumed = run_cli(args + overrides(tiny_model_dir, synthetic_bench, killed), stderr=subprocess.PIPE, text=True)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert "resuming from" in err
    a, b = trained_weights(straight), trained_weights(killed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5, msg=key)


def test_bad_recipe_fails_before_training(tmp_path):
    proc = run_cli(["train", "tiny_audio", "train.learnig_rate=1"], stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "unknown key train.learnig_rate" in err
    assert "Loading weights" not in err


def test_stagewise_second_patch_keeps_first_frozen(tiny_model_dir, synthetic_bench, tmp_path):
    first = tmp_path / "first"
    train(load_recipe(recipes.find("tiny_audio"), overrides(tiny_model_dir, synthetic_bench, first, "train.max_steps=2")))
    second = tmp_path / "second"
    recipe = load_recipe(
        recipes.find("tiny_audio"),
        overrides(
            tiny_model_dir, synthetic_bench, second, "train.max_steps=2", "patch.name=audio2",
            f"patch.init_patches=[{first}]",
        ),
    )
    train(recipe)
    model = PatchedModel.from_pretrained([first, second])
    assert model.active_patches == ["audio", "audio2"]
    frozen = load_file(first / "patch.safetensors")
    for key, value in model.patches["audio"].state_dict().items():
        assert torch.equal(value, frozen[key]), key
    assert json.loads((second / "patch_config.json").read_text())["name"] == "audio2"


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_model_dir, synthetic_bench, tmp_path):
    """torchrun with 2 gloo processes: training runs, both ranks end identical, rank 0 writes."""
    out, dumps = tmp_path / "ddp", tmp_path / "ranks"
    dumps.mkdir()
    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import os, sys\n"
        "from safetensors.torch import save_file\n"
        "from pave import recipes\n"
        "from pave.recipes import load_recipe\n"
        "from pave.training import train as t\n"
        "captured = {}\n"
        "original = t.PatchTrainer.train\n"
        "def keep(self, *a, **k):\n"
        "    result = original(self, *a, **k)\n"
        "    captured['model'] = self.accelerator.unwrap_model(self.model)\n"
        "    assert self.accelerator.distributed_type == 'MULTI_CPU', self.accelerator.distributed_type\n"
        "    return result\n"
        "t.PatchTrainer.train = keep\n"
        "t.train(load_recipe(recipes.find('tiny_audio'), sys.argv[2:]))\n"
        "state = {n: p.detach().contiguous() for n, p in captured['model'].named_parameters() if p.requires_grad}\n"
        "save_file(state, os.path.join(sys.argv[1], f\"rank{os.environ['RANK']}.safetensors\"))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        str(script), str(dumps),
        *overrides(tiny_model_dir, synthetic_bench, out, "train.max_steps=3", "train.per_device_batch_size=2"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = load_file(dumps / "rank0.safetensors"), load_file(dumps / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and rank0
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), (key, (rank0[key] - rank1[key]).abs().max())
    assert (out / "patch.safetensors").exists() and (work(out) / "checkpoint-2").is_dir()
    state = json.loads((work(out) / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3


def test_gradient_checkpointing_trains_the_same_steps(tiny_model_dir, synthetic_bench, tmp_path):
    """Activation checkpointing recomputes the LLM's layers in backward: same losses, less memory."""
    losses = {}
    for flag in ("false", "true"):
        out = tmp_path / flag
        train(
            load_recipe(
                recipes.find("tiny_audio"),
                overrides(tiny_model_dir, synthetic_bench, out, "train.max_steps=2", f"train.gradient_checkpointing={flag}"),
            )
        )
        state = json.loads((work(out) / "checkpoint-2" / "trainer_state.json").read_text())
        losses[flag] = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert losses["true"] == pytest.approx(losses["false"], rel=1e-4)


def test_activation_checkpointing_reaches_the_llm(tiny_model_dir):
    model = PatchedModel.from_base(str(tiny_model_dir))
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    layers = model.llava.model.language_model
    assert any(getattr(m, "gradient_checkpointing", False) for m in layers.modules())


def test_validation_split_keeps_the_best_checkpoint(tiny_model_dir, synthetic_bench, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pave")
    out = tmp_path / "run"
    extra = (
        f"data.validation=[{synthetic_bench['test']}]", "train.max_steps=6", "train.save_steps=2",
        "train.eval_steps=2", "train.learning_rate=0.05", "train.save_total_limit=null",
    )
    train(load_recipe(recipes.find("tiny_audio"), overrides(tiny_model_dir, synthetic_bench, out, *extra)))
    summary = json.loads((out / "validation.json").read_text())
    losses = {e["step"]: e["eval_loss"] for e in summary["evaluations"]}
    assert sorted(losses) == [2, 4, 6]
    best = min(losses, key=losses.get)
    assert summary["best_checkpoint"].endswith(f"checkpoint-{best}") and summary["best_eval_loss"] == losses[best]
    assert f"keeping the best checkpoint {summary['best_checkpoint']}" in caplog.text
    # What ships is the best checkpoint's patch.
    assert trained_weights(out).keys() == trained_weights(work(out) / f"checkpoint-{best}").keys()
    for key, value in trained_weights(out).items():
        assert torch.equal(value, trained_weights(work(out) / f"checkpoint-{best}")[key]), key


def test_a_patched_model_you_built_trains_with_the_plain_trainer_api(tiny_model_dir, synthetic_bench, tmp_path):
    """As with peft: build the model, hand it to the Trainer with pave's dataset and collator."""
    from transformers import TrainingArguments

    from pave.batching import QACollator, QADataset, store_source
    from pave.data.datasets import load_samples
    from pave.models.processor import VideoChatProcessor
    from pave.sidechannels import FeatureStore
    from pave.training.trainer import PatchTrainer

    model = PatchedModel.from_base(str(tiny_model_dir))
    model.add_lora(r=4, alpha=8)
    model.add_patch("audio", model.patch_config(side_dim=256, side_channel="audio", hidden_dim=16, num_heads=2))
    processor = VideoChatProcessor.from_pretrained(tiny_model_dir, model)
    samples = load_samples("music_avqa", [synthetic_bench["train"]])
    audio = store_source(FeatureStore(synthetic_bench["audio"]), "audio")
    dataset = QADataset(samples, synthetic_bench["root"], 4, {"audio": audio})
    args = TrainingArguments(
        str(tmp_path / "work"), max_steps=4, save_steps=2, per_device_train_batch_size=2, learning_rate=1e-2, report_to="none"
    )
    before = {k: v.clone() for k, v in model.patches["audio"].state_dict().items()}
    trainer = PatchTrainer(model=model, args=args, train_dataset=dataset, data_collator=QACollator(processor))
    trainer.train()
    assert any(not torch.equal(v, before[k]) for k, v in model.patches["audio"].state_dict().items())
    saved = model.save_pretrained(tmp_path / "mine")
    assert PatchedModel.from_pretrained(saved).active_patches == ["audio"]
    # Keeping the best checkpoint loads that checkpoint's patch and LoRA into the live model.
    trainer.state.best_model_checkpoint = str(tmp_path / "work" / "checkpoint-2")
    trainer._load_best_model()
    live = model.patches["audio"].state_dict()
    for key, value in load_file(tmp_path / "work" / "checkpoint-2" / "patch.safetensors").items():
        assert torch.equal(live[key], value), key
    assert any(not torch.equal(live[k], v) for k, v in load_file(saved / "patch.safetensors").items())


def test_a_patch_learning_rate_of_its_own(tiny_model_dir, synthetic_bench, tmp_path):
    """train.patch_learning_rate: the patch gets its own rate (0 here: it stays put) while LoRA
    trains at the run's rate."""
    from transformers import TrainingArguments

    from pave.batching import QACollator, QADataset, store_source
    from pave.data.datasets import load_samples
    from pave.models.processor import VideoChatProcessor
    from pave.sidechannels import FeatureStore
    from pave.training.trainer import PatchTrainer

    model = PatchedModel.from_base(str(tiny_model_dir))
    model.add_lora(r=4, alpha=8)
    model.add_patch("audio", model.patch_config(side_dim=256, side_channel="audio", hidden_dim=16, num_heads=2))
    processor = VideoChatProcessor.from_pretrained(tiny_model_dir, model)
    samples = load_samples("music_avqa", [synthetic_bench["train"]])
    dataset = QADataset(samples, synthetic_bench["root"], 4, {"audio": store_source(FeatureStore(synthetic_bench["audio"]), "audio")})
    args = TrainingArguments(str(tmp_path / "work"), max_steps=2, save_strategy="no", learning_rate=1e-2, report_to="none")
    patch = {k: v.clone() for k, v in model.patches["audio"].state_dict().items()}
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n}
    trainer = PatchTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=QACollator(processor), patch_learning_rate=0.0
    )
    trainer.train()
    assert sorted({g["initial_lr"] for g in trainer.optimizer.param_groups}) == [0.0, 1e-2]
    assert all(torch.equal(v, patch[k]) for k, v in model.patches["audio"].state_dict().items())
    assert any(not torch.equal(p, lora[n]) for n, p in model.named_parameters() if n in lora)


def test_resume_passes_over_a_checkpoint_killed_while_saving(tmp_path):
    from pave.training.train import last_complete_checkpoint

    for step, state in ((2, '{"global_step": 2}'), (4, '{"global_st'), (6, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert last_complete_checkpoint(tmp_path / "none") is None
