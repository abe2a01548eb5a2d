"""The alternatives PAVE is compared with, each a patch kind of its own.

Every adapter is a folder with ``config.py`` (a JSON-serialised dataclass), its module, and an
``__init__.py`` that registers its kind and method in :mod:`pave.methods` (how it sizes itself
for a base and a side channel, its FLOPs, its label), so training, ``PatchedModel``, ``pave
flops``, cost reports and the quickstart handle it like a patch:

- ``interleave``: side tokens projected to the LLM width and appended to the video's tokens (the
  paper's FT (interleave));
- ``qformer``: Video-LLaMA's video and audio Q-Formers, whose queries become extra LLM tokens;
- ``pooling``: PLLaVA's adaptive average pooling of the visual tokens.

PAVE with learnable queries is a :class:`~pave.patch.PatchConfig` setting
(``query_source="learnable"``), and LoRA-only fine-tuning needs no adapter.
"""

from pave.adapters.base import AdapterConfig, AdapterOutput, TokenAdapter, TokenLayout
from pave.adapters.interleave import InterleaveAdapter, InterleaveConfig
from pave.adapters.pooling import PoolingAdapter, PoolingConfig
from pave.adapters.qformer import QFormerAdapter, QFormerConfig

__all__ = [
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
]
