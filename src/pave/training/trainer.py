"""transformers' Trainer, saving and resuming only what a patch run trains.

The Trainer brings gradient accumulation, mixed precision, DDP under ``torchrun`` /
``accelerate launch``, DeepSpeed, logging, progress bars and resumable checkpoints (optimizer,
scheduler, RNG and data position). Two overrides make its checkpoints small: ``_save`` writes the
patch and the LoRA adapter through ``PatchedModel.save_pretrained`` (megabytes, not the frozen
base's gigabytes), and ``_load_from_checkpoint`` loads them back into the live model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from pave.recipes import TrainSection

logger = logging.getLogger(__name__)

# Shipped DeepSpeed configs, by the short name a recipe may give in ``train.deepspeed``.
DEEPSPEED_CONFIGS = {"zero2": Path(__file__).with_name("deepspeed_zero2.json")}


class PatchTrainer(Trainer):
    """A ``Trainer`` for :class:`~pave.models.PatchedModel` (see the module docstring).

    Use it as you would the plain ``Trainer`` with a model you built: a
    :class:`~pave.batching.QADataset` as ``train_dataset`` (and ``eval_dataset``) and a
    :class:`~pave.batching.QACollator` as ``data_collator``. The batch keys the model needs
    (``visual``, ``side``...) are kept whatever ``remove_unused_columns`` says.


    Args:
        patch_learning_rate: a learning rate for the patches' parameters (the rest, LoRA, keeps
            ``args.learning_rate``); ``None``: one rate for all.
    """

    def __init__(self, *args, patch_learning_rate: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.patch_learning_rate = patch_learning_rate
        # The collator builds keys the model's signature names only as **kwargs.
        self.args.remove_unused_columns = False
        self.args.label_names = ["labels"]

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.patch_learning_rate is None:
            return optimizer
        # Split each group (decay / no decay) in two before the scheduler reads the rates.
        patches = {id(p) for p in self.accelerator.unwrap_model(model or self.model).patches.parameters()}
        groups = []
        for group in optimizer.param_groups:
            mine = [p for p in group["params"] if id(p) in patches]
            rest = [p for p in group["params"] if id(p) not in patches]
            groups += [{**group, "params": rest}, {**group, "params": mine, "lr": self.patch_learning_rate}]
        optimizer.param_groups = [g for g in groups if g["params"]]
        return optimizer

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir or self.args.output_dir
        model = self.accelerator.unwrap_model(self.model)
        broken = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
        if broken:  # a step can turn weights to Inf with a finite loss: never save them
            raise FloatingPointError(
                f"non-finite trainable weights after step {self.state.global_step} ({broken[:3]}); not saved to "
                f"{output_dir}. Lower train.learning_rate; the last checkpoint is intact."
            )
        model.save_pretrained(output_dir, is_main_process=self.args.should_save)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        finite = torch.isfinite(loss).all()
        grads = [p.grad.float().norm() for p in model.parameters() if p.grad is not None]
        if grads:  # one reduction, one device sync, for every trainable tensor
            finite &= torch.isfinite(torch.stack(grads)).all()
        flag = (~finite).float().reshape(1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag)  # every rank stops, not only the one that diverged
        if flag.item():
            # Stop before the optimizer writes non-finite weights that a checkpoint would keep.
            raise FloatingPointError(
                f"non-finite training loss or gradients (loss {loss.item()}) at step {self.state.global_step + 1}; "
                "nothing more is saved. Lower train.learning_rate or look for bad inputs; the last checkpoint is intact."
            )
        return loss

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = self.accelerator.unwrap_model(model or self.model)
        logger.info("resuming patch and LoRA weights from %s", resume_from_checkpoint)
        model.load_trainable_state(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint
        logger.info("keeping the best checkpoint %s (eval loss %.4g)", best, self.state.best_metric)
        self.accelerator.unwrap_model(self.model).load_trainable_state(best)


def bf16_available() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def training_arguments(
    section: TrainSection, world_size: int = 1, validation: bool = False, **extra
) -> TrainingArguments:
    """``TrainingArguments`` from a recipe's train section.

    The global batch is kept whatever the number of processes: gradient accumulation steps =
    global batch / (per-device batch x processes).
    """
    per_step = section.per_device_batch_size * world_size
    if section.global_batch_size % per_step:
        raise ValueError(
            f"train.global_batch_size={section.global_batch_size} is not a multiple of "
            f"per_device_batch_size x processes = {section.per_device_batch_size} x {world_size}"
        )
    bf16 = {"auto": bf16_available(), "true": True, "false": False}.get(str(section.bf16).lower())
    if bf16 is None:
        raise ValueError(f"train.bf16 must be auto, true or false, got {section.bf16!r}")
    kwargs = dict(
        output_dir=str(section.checkpoint_dir),
        num_train_epochs=section.epochs,
        max_steps=section.max_steps,
        learning_rate=section.learning_rate,
        weight_decay=section.weight_decay,
        max_grad_norm=section.max_grad_norm,
        tf32=_tf32(section.tf32),
        warmup_steps=section.warmup_ratio,  # a value below 1 is a fraction of all steps
        lr_scheduler_type=section.scheduler,
        per_device_train_batch_size=section.per_device_batch_size,
        gradient_accumulation_steps=section.global_batch_size // per_step,
        seed=section.seed,
        data_seed=section.seed,
        bf16=bf16,
        **_checkpointing(section.gradient_checkpointing),
        save_strategy="steps",
        save_steps=section.save_steps,
        save_total_limit=section.save_total_limit,
        logging_steps=section.logging_steps,
        dataloader_num_workers=section.dataloader_workers,
        deepspeed=str(DEEPSPEED_CONFIGS.get(section.deepspeed, section.deepspeed)) if section.deepspeed else None,
        report_to=section.report_to,
        remove_unused_columns=False,
        label_names=["labels"],
        # Several processes without GPUs: accelerate runs DDP over gloo only when told it is on CPU.
        use_cpu=world_size > 1 and not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(),
        ddp_find_unused_parameters=False,
    )
    if validation:  # the validation loss every eval_steps; the best checkpoint is kept
        eval_steps = section.eval_steps or section.save_steps
        if section.save_steps % eval_steps:
            raise ValueError(
                f"train.save_steps ({section.save_steps}) must be a multiple of train.eval_steps ({eval_steps})"
            )
        kwargs.update(
            eval_strategy="steps",
            eval_steps=eval_steps,
            per_device_eval_batch_size=section.per_device_batch_size,
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
        )
    if section.optim is not None:
        kwargs["optim"] = section.optim
    kwargs.update(extra)
    return TrainingArguments(**kwargs)


def _tf32(wanted: bool | None) -> bool | None:
    """The recipe's ``tf32`` where the hardware has TF32; the paper recipes ask for it, and a
    CPU or an older GPU runs them in full float32 instead of refusing."""
    from transformers.utils import is_torch_tf32_available

    if wanted and not is_torch_tf32_available():
        logger.info("train.tf32: no Ampere or newer GPU here; matrix products stay in full float32")
        return None
    return wanted


def _checkpointing(enabled: bool) -> dict:
    """Activation checkpointing arguments under whichever name this transformers uses."""
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False}}
