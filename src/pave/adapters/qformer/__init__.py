"""Video-LLaMA style Q-Formers (video and audio) on transformers' BLIP-2 Q-Former."""

from pave.adapters.base import register_adapter
from pave.adapters.qformer.config import QFormerConfig
from pave.adapters.qformer.qformer import QFormerAdapter

register_adapter("qformer", QFormerConfig, QFormerAdapter)

__all__ = ["QFormerConfig", "QFormerAdapter"]
