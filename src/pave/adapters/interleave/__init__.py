"""The FT (interleave) baseline: side tokens as extra LLM tokens."""

from pave.adapters.interleave.config import InterleaveConfig
from pave.adapters.interleave.interleave import InterleaveAdapter
from pave.methods import Kind, Method, base_fields, register


def _size(visual, side, settings) -> dict:
    """LLM width from the base; side width, grid and length (every sample is resampled to the
    first item's number of side frames) from the side channel."""
    fields = base_fields(InterleaveConfig, visual)
    if side is not None:
        fields |= {"side_dim": side.dim, "side_grid": side.grid, "side_frames": side.frames}
    return fields


def _flops(config: InterleaveConfig, visual, side) -> int:
    """The projector on every extra token: two matrix products (2 FLOPs per multiply-add) and GELU."""
    width = config.output_dim
    return config.num_tokens * (2 * (config.side_dim * width + width * width) + 2 * width)


register(
    Kind("interleave", InterleaveConfig, InterleaveAdapter, size=_size, side="required", flops=_flops),
    Method("interleave", "FT (interleave)", kind="interleave"),
)

__all__ = ["InterleaveConfig", "InterleaveAdapter"]
