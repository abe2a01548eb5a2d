"""Which device and dtype a model runs in, decided in one place for every command.

Defaults: CUDA when there is a GPU, else the CPU; bfloat16 on a GPU that supports it, float32
otherwise. (transformers' own default, the checkpoint's dtype, is float16 for the released
LLaVA-OneVision weights: slow and inexact on a CPU, prone to overflow in training.)
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None``: CUDA when available, else the CPU. A CUDA
    device without a GPU is an error saying so, not a crash at the first tensor."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA GPU here; use --device cpu")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None = None, device: str | torch.device | None = None) -> torch.dtype:
    """``dtype`` as a ``torch.dtype``; ``None`` or ``"auto"``: bfloat16 on a CUDA device that
    supports it, float32 otherwise."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        on_cuda = resolve_device(device).type == "cuda"
        return torch.bfloat16 if on_cuda and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]
