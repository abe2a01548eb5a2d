"""PLLaVA style adaptive pooling of the visual tokens (trained with LoRA)."""

from pave.adapters.base import register_adapter
from pave.adapters.pooling.config import PoolingConfig
from pave.adapters.pooling.pooling import PoolingAdapter

register_adapter("pooling", PoolingConfig, PoolingAdapter)

__all__ = ["PoolingConfig", "PoolingAdapter"]
