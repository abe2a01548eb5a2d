"""FLOPs and parameters of a live (patched) model, counted as ``pave flops`` counts them.

``pave.flops`` knows the base model, FT, PAVE (visual or learnable queries) and interleaving.
For the Q-Former and pooling adapters the LLM's prefill uses the same formula at the adapter's
real number of LLM tokens; the Q-Former's own FLOPs are its matrix products, counted by
``FlopCounterMode`` over one forward pass on a sample (norms, softmax and GELU not counted), and
pooling costs one add per visual-token channel it averages.
"""

from __future__ import annotations

import dataclasses

import torch

from pave.flops import (
    LORA_RANK,
    TEXT_TOKENS,
    Accounting,
    ParameterCount,
    SideLayout,
    account,
    llm_prefill_flops,
    parameter_count,
)
from pave.models.llava_onevision import VisualTokens, query_dim, tokens_per_frame, visual_grid
from pave.models.patched import PatchedModel, kind_of


def method_of(model: PatchedModel) -> str:
    """The ``pave.flops`` method name of a model's active patch or adapter."""
    if not model.active_patches:
        return "ft" if model.has_lora else "base"
    module = model.patches[model.active_patches[0]]
    kind = kind_of(module)
    if kind == "pave" and module.config.query_source == "learnable":
        return "pave-learnable"
    return kind


def model_accounting(model: PatchedModel, num_frames: int, item: dict) -> Accounting:
    """Prefill FLOPs (paper convention: 40 text tokens) and parameters of ``model``.

    Args:
        num_frames: key frames per video.
        item: one dataset item (:class:`~pave.training.data.QADataset`), whose side channels give
            the real side lengths (its frames or cached visual tokens are not needed).
    """
    method = method_of(model)
    lora_rank = model.base.peft_config["default"].r if model.has_lora else LORA_RANK
    if method in ("qformer", "pooling"):
        cost = _measured_adapter_cost(model, method, num_frames, item, lora_rank)
    else:
        layout, patch_config = "none", None
        if method not in ("base", "ft"):
            name = model.active_patches[0]
            side = item["side"][model.side_channel_of(name)]
            config = model.patches[name].config
            frames = config.side_frames if method == "interleave" else side.tokens.shape[0]
            layout = SideLayout(frames=frames, grid=side.grid, dim=side.dim)
            patch_config = config if method.startswith("pave") else None
        cost = account(
            model.config, method, layout, frames=num_frames, patch_config=patch_config, lora_rank=lora_rank
        )
    # Loaded adapters are frozen for inference, so the trained parameters are counted by role.
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n or n.startswith("patches."))
    return cost.with_parameters(ParameterCount(total=parameter_count(model).total, trainable=trainable))


def _measured_adapter_cost(model, method, num_frames, item, lora_rank) -> Accounting:
    from torch.utils.flop_counter import FlopCounterMode

    layout = model.token_layout()
    # As pave.flops counts: the visual grid and the extra tokens, not the newline, plus the prompt.
    llm_tokens = layout.grid_tokens(num_frames) + layout.extra + TEXT_TOKENS
    # FLOPs depend on shapes only: zeros of the visual tokens' shape serve, cached or not.
    h, w = visual_grid(model.config)
    visual = VisualTokens(
        torch.zeros(1, num_frames, h, w, model.config.text_config.hidden_size),
        torch.zeros(1, num_frames, h, w, query_dim(model.config, "vision")),
    ).to(next(model.llava.parameters()).device)
    side = {name: {"tokens": channel.tokens[None].to(visual.tokens.device)} for name, channel in item["side"].items()}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.adapted_tokens(visual, side)
    flops_adapter = counter.get_total_flops()
    if method == "pooling":  # FlopCounterMode does not count pooling
        flops_adapter += num_frames * tokens_per_frame(model.config) * model.config.text_config.hidden_size
    ft = account(model.config, "ft", "none", frames=num_frames, lora_rank=lora_rank)
    return dataclasses.replace(
        ft,
        method=method,
        llm_tokens=llm_tokens,
        flops_llm=llm_prefill_flops(model.config.text_config, llm_tokens),
        flops_patch=flops_adapter,
    )
