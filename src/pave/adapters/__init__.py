"""The alternatives PAVE is compared with, each a patch kind of its own.

Every adapter is a folder with ``config.py`` (a JSON-serialised dataclass), its module, and an
``__init__.py`` that registers the kind, so ``PatchedModel`` adds, trains, saves and loads it
like a patch:

- ``interleave``: side tokens projected to the LLM width and appended to the video's tokens (the
  paper's FT (interleave));
- ``qformer``: Video-LLaMA's video and audio Q-Formers, whose queries become extra LLM tokens;
- ``pooling``: PLLaVA's adaptive average pooling of the visual tokens.

PAVE with learnable queries is a :class:`~pave.patch.PatchConfig` setting
(``query_source="learnable"``), and LoRA-only fine-tuning needs no adapter.
"""

from pave.adapters.base import (
    ADAPTER_KINDS,
    AdapterConfig,
    AdapterOutput,
    TokenAdapter,
    TokenLayout,
    register_adapter,
)
from pave.adapters.interleave import InterleaveAdapter, InterleaveConfig
from pave.adapters.pooling import PoolingAdapter, PoolingConfig
from pave.adapters.qformer import QFormerAdapter, QFormerConfig

__all__ = [
    "ADAPTER_KINDS",
    "AdapterConfig",
    "AdapterOutput",
    "InterleaveAdapter",
    "InterleaveConfig",
    "PoolingAdapter",
    "PoolingConfig",
    "QFormerAdapter",
    "QFormerConfig",
    "TokenAdapter",
    "TokenLayout",
    "register_adapter",
]
