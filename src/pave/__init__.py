"""PAVE: patch pre-trained video LLMs with side-channel signals.

The method (a temporal-aligned cross-attention *patch* plus LoRA) lives in :mod:`pave.patch`
(plain torch); the integration with Hugging Face base models in :mod:`pave.models`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
