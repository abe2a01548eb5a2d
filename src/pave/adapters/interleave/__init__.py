"""The FT (interleave) baseline: side tokens as extra LLM tokens."""

from pave.adapters.base import register_adapter
from pave.adapters.interleave.config import InterleaveConfig
from pave.adapters.interleave.interleave import InterleaveAdapter

register_adapter("interleave", InterleaveConfig, InterleaveAdapter)

__all__ = ["InterleaveConfig", "InterleaveAdapter"]
