"""One layer's output of a frozen vision tower, without keeping every layer's.

LLaVA-style models read their visual features from ``hidden_states[layer]`` of the vision
tower. Asking transformers for ``output_hidden_states=True`` keeps all of them: 27 tensors for
SigLIP-so400m, 43 MiB per frame in bf16 instead of the 1.6 MiB needed. A hook on the encoder
layer that produces the requested state captures just that one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def encoder_layers(tower: nn.Module) -> nn.ModuleList:
    """The transformer layers of a CLIP/SigLIP-style vision tower (``...encoder.layers``)."""
    for name, module in tower.named_modules():
        if name.endswith("encoder.layers") and isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"{type(tower).__name__}: no encoder.layers found in the vision tower")


@torch.no_grad()
def hidden_states(tower: nn.Module, pixel_values: torch.Tensor, layers: int | Sequence[int], **kwargs) -> torch.Tensor:
    """``hidden_states[layer]`` of ``tower(pixel_values)``, or several concatenated on the last axis.

    Index 0 is the embeddings' output, i the output of layer i, negative indices count from the
    end, as in transformers' ``output_hidden_states``.

    Args:
        tower: a vision tower (``SiglipVisionModel``, ``CLIPVisionModel``, ...).
        pixel_values: (N, 3, S, S).
        layers: an index or a list of indices into the hidden states.
        kwargs: passed to the tower (e.g. ``interpolate_pos_encoding``).

    Returns:
        (N, L, C) for one index, (N, L, C * len(layers)) for several.
    """
    blocks = encoder_layers(tower)
    wanted = [layers] if isinstance(layers, int) else list(layers)
    count = len(blocks) + 1
    for index in wanted:
        if not -count <= index < count:
            raise ValueError(f"vision feature layer {index} out of range for {count} hidden states")
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for index in sorted({i % count for i in wanted}):
        if index < len(blocks):  # the input of the next layer
            def keep_input(_module, args, kwargs_in, index=index):
                captured[index] = args[0] if args else kwargs_in["hidden_states"]

            handles.append(blocks[index].register_forward_pre_hook(keep_input, with_kwargs=True))
        else:  # the last layer's output
            def keep_output(_module, _args, output, index=index):
                captured[index] = output[0] if isinstance(output, tuple) else output

            handles.append(blocks[-1].register_forward_hook(keep_output))
    try:
        tower(pixel_values=pixel_values, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    states = [captured[i % count] for i in wanted]
    return states[0] if len(states) == 1 else torch.cat(states, dim=-1)
