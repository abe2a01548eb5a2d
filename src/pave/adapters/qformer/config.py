"""`QFormerConfig`: Video-LLaMA's video and audio Q-Formers as an adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pave.adapters.base import AdapterConfig


@dataclass
class QFormerConfig(AdapterConfig):
    """Configuration of a :class:`~pave.adapters.qformer.QFormerAdapter`.

    Defaults are Video-LLaMA's: two BERT-style layers 768 wide with 12 heads, cross-attention in
    every layer, 32 video queries and 8 audio queries, a learned frame position table of 32 rows.

    Args:
        query_dim: width C_q of the frame features the video Q-Former reads (the vision tower's
            features before the projector, 1152 for SigLIP so400m).
        output_dim: the LLM hidden size C_v the query outputs are projected to.
        side_dim: width C_s of the side tokens the audio Q-Former reads; None builds the video
            branch only.
        hidden_size: width of both Q-Formers.
        num_layers: layers of each Q-Former (each with self-, cross-attention and feed-forward).
        num_heads: attention heads.
        intermediate_size: inner width of the feed-forward.
        video_queries: learned queries of the video Q-Former = its extra LLM tokens.
        side_queries: learned queries of the audio (side) Q-Former = its extra LLM tokens.
        max_frames: rows of the frame position table (the most key frames a video may have).
        max_side_frames: rows of the side-frame position table (the most side frames a sample
            may have; Video-LLaMA uses 8 audio clips, PAVE's audio has about one per second).
        dropout: dropout of the Q-Formers (BERT's 0.1).
    """

    query_dim: int = 1152
    output_dim: int = 896
    side_dim: int | None = 1024
    hidden_size: int = 768
    num_layers: int = 2
    num_heads: int = 12
    intermediate_size: int = 3072
    video_queries: int = 32
    side_queries: int = 8
    max_frames: int = 32
    max_side_frames: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"QFormerConfig.hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        for name in ("video_queries", "side_queries", "max_frames", "max_side_frames", "num_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"QFormerConfig.{name} must be positive, got {getattr(self, name)}")

    @property
    def uses_side(self) -> bool:
        return self.side_dim is not None

    @property
    def num_tokens(self) -> int:
        """Extra LLM tokens per video: the query outputs of both Q-Formers."""
        return self.video_queries + (self.side_queries if self.uses_side else 0)

    def base_requirements(self) -> dict[str, Any]:
        return {"output_dim (LLM hidden size)": self.output_dim, "query_dim": self.query_dim}
