"""The data layer that training, evaluation, inference and the quickstart share: benchmark
samples as a dataset (:class:`QADataset`), side channels from feature stores
(:func:`store_source`), the frozen vision tower's output cached per video
(:class:`VisualTokenCache`) and batches of :class:`~pave.tokens.VisualTokens` and
:class:`~pave.tokens.SideInputs` (:class:`QACollator`)."""

from pave.batching.collator import QACollator, pad_side
from pave.batching.dataset import QADataset, SideSource, repeat_samples, store_source, target_text
from pave.batching.visual_cache import VisualTokenCache

__all__ = [
    "QACollator",
    "QADataset",
    "SideSource",
    "VisualTokenCache",
    "pad_side",
    "repeat_samples",
    "store_source",
    "target_text",
]
