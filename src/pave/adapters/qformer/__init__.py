"""Video-LLaMA style Q-Formers (video and audio) on transformers' BLIP-2 Q-Former."""

from pave.adapters.qformer.config import QFormerConfig
from pave.adapters.qformer.qformer import QFormerAdapter
from pave.methods import Kind, Method, base_fields, register


def _size(visual, side, settings) -> dict:
    """LLM and vision-feature widths from the base; the audio branch's width from the side
    channel, and no audio branch without one."""
    return base_fields(QFormerConfig, visual) | {"side_dim": None if side is None else side.dim}


register(
    Kind("qformer", QFormerConfig, QFormerAdapter, size=_size, side="optional"),
    # Video-LLaMA's shape (2 layers, 32 + 8 queries) scaled down to the tiny base's widths.
    Method(
        "qformer",
        "Q-Former (Video-LLaMA)",
        kind="qformer",
        tiny={
            "hidden_size": 32,
            "num_heads": 4,
            "intermediate_size": 64,
            "video_queries": 8,
            "side_queries": 4,
            "max_side_frames": 16,
        },
    ),
)

__all__ = ["QFormerConfig", "QFormerAdapter"]
