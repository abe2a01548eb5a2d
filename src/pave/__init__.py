"""PAVE: patch pre-trained video LLMs with side-channel signals.

The method (a temporal-aligned cross-attention *patch* plus LoRA) lives in :mod:`pave.patch`
(plain torch); the integration with Hugging Face base models in :mod:`pave.models`. The names
below are imported on first use, so ``import pave`` stays light.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "PatchConfig": "pave.patch",
    "PavePatch": "pave.patch",
    "PatchedModel": "pave.models",
    "SideInputs": "pave.models",
    "SideChannel": "pave.sidechannels.base",
    "FeatureStore": "pave.sidechannels.store",
    "get_encoder": "pave.sidechannels.base",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pave' has no attribute {name!r}")
