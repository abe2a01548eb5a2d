"""FLOPs and parameters of a live (patched) model, counted as ``pave flops`` counts them: the
model's method and the config of its active patch or adapter go through
:func:`pave.flops.account`, with the side channel's real length from a dataset item.
"""

from __future__ import annotations

from pave.flops import LORA_RANK, Accounting, ParameterCount, SideLayout, account, parameter_count
from pave.models.patched import PatchedModel


def model_accounting(model: PatchedModel, num_frames: int, item: dict) -> Accounting:
    """Prefill FLOPs (paper convention: 40 text tokens) and parameters of ``model``.

    Args:
        num_frames: key frames per video.
        item: one dataset item (:class:`~pave.batching.QADataset`), whose side channels give
            the real side lengths (its frames or cached visual tokens are not needed).
    """
    method = model.method
    lora_rank = model.base.peft_config["default"].r if model.has_lora else LORA_RANK
    side, config = "none", None
    if method.kind is not None:
        name = model.active_patches[0]
        config = model.patches[name].config
        channel = model.side_channel_of(name)
        if channel is not None:
            side = SideLayout.of(item["side"][channel].tokens)
    cost = account(model.config, method.name, side, frames=num_frames, patch_config=config, lora_rank=lora_rank)
    # Loaded adapters are frozen for inference, so the trained parameters are counted by role.
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n or n.startswith("patches."))
    return cost.with_parameters(ParameterCount(total=parameter_count(model).total, trainable=trainable))
