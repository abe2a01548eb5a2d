"""The ``pave`` kind in the method registry (:mod:`pave.methods`): how a patch sizes itself for
a base and a side channel, and its FLOPs as the paper counts them (Appendix B.5).

Methods: ``pave`` (queries from the vision features) and ``pave-learnable`` (one learned query
per grid cell: the paper's Table 4 ablation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pave.methods import Kind, Method, SideLayout, VisualLayout, register
from pave.patch.config import PatchConfig, rope_for_grid
from pave.patch.patch import PavePatch


def size_patch(visual: VisualLayout, side: SideLayout | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Query and output widths and the token grid from the base; side width and grid from the
    side channel, with temporal RoPE for side tokens without a spatial grid (such as audio)."""
    source = settings.get("query_source", "vision")
    fields: dict[str, Any] = {
        "query_dim": visual.feature_dim if source == "vision" else visual.width,
        "output_dim": visual.width,
        "visual_grid": visual.grid,
    }
    if source == "learnable":
        fields["query_grid"] = visual.grid
    if side is not None:
        fields |= {"side_dim": side.dim, "side_grid": side.grid, "rope": rope_for_grid(side.grid)}
    return fields


def patch_flops(
    config: PatchConfig, visual: VisualLayout, side: SideLayout, matmul_only: bool = False
) -> int:
    """FLOPs of one :class:`~pave.patch.PavePatch` forward pass for one sample, as built.

    Matrix products count 2 FLOPs per multiply-add (biases not counted), as
    ``torch.utils.flop_counter.FlopCounterMode`` counts them. The rest follows the LLM's
    convention: softmax 5 per score, LayerNorm 7 per element, GELU 2, residual add 1; RoPE is
    not counted. Side signals shorter than T frames are interpolated to T frames first; every key
    frame's window is padded to the longest one, and the padded keys are computed too. Windows
    are those of ``alignment="chunk"``; timestamp windows can be wider or narrower.
    """
    d, heads = config.hidden_dim, config.num_heads
    queries = visual.grid_tokens
    side_frames = max(side.frames, visual.frames)  # after interpolation
    memory = side_frames * side.tokens_per_frame
    keys_per_query = math.ceil(side_frames / visual.frames) * side.tokens_per_frame

    matmul = 2 * side.num_tokens * side.dim * d  # input mapping, before interpolation
    if config.query_source != "learnable":
        matmul += 2 * queries * config.query_dim * d
    kv_projections = 1 if config.value_from_key else 2
    matmul += config.num_layers * (
        2 * queries * d * d  # q
        + kv_projections * 2 * memory * d * d  # k, v
        + 2 * (2 * queries * keys_per_query * d)  # Q K^T, then the value product
        + 2 * (2 * queries * d * config.ffn_dim)  # feed-forward
    )
    matmul += 2 * queries * (d * config.output_mlp_dim + config.output_mlp_dim * config.output_dim)
    if matmul_only:
        return matmul
    other = config.num_layers * (
        5 * heads * queries * keys_per_query  # softmax
        + 7 * d * queries  # feed-forward LayerNorm
        + 2 * config.ffn_dim * queries  # GELU
        + 2 * d * queries  # two residual adds
    )
    # Output MLP's GELU, output LayerNorm, and adding the delta to the visual tokens.
    other += (2 * config.output_mlp_dim + 7 * config.output_dim + config.output_dim) * queries
    return matmul + other


# The tiny quickstart base is 32 wide: a patch of the paper's shape scaled down to it.
_TINY = {"hidden_dim": 64, "num_heads": 4, "ffn_dim": 128, "output_mlp_dim": 128}

register(
    Kind("pave", PatchConfig, PavePatch, size=size_patch, side="required", flops=patch_flops),
    Method("pave", "PAVE", kind="pave", tiny=_TINY),
    Method("pave-learnable", "PAVE (learnable)", kind="pave", settings={"query_source": "learnable"}, tiny=_TINY),
)
