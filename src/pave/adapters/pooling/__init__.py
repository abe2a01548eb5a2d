"""PLLaVA style adaptive pooling of the visual tokens (trained with LoRA)."""

from pave.adapters.pooling.config import PoolingConfig
from pave.adapters.pooling.pooling import PoolingAdapter
from pave.methods import Kind, Method, register


def _flops(config: PoolingConfig, visual, side) -> int:
    """One add per channel of every visual token averaged (``FlopCounterMode`` counts no pooling)."""
    return visual.grid_tokens * visual.width


register(
    Kind("pooling", PoolingConfig, PoolingAdapter, size=lambda visual, side, settings: {}, side="none", flops=_flops),
    # PLLaVA halves each side of the grid and keeps every frame: 4 x 4 -> 2 x 2 on the tiny base.
    Method("pooling", "Pooling (PLLaVA)", kind="pooling", tiny={"grid": [2, 2]}),
)

__all__ = ["PoolingConfig", "PoolingAdapter"]
