"""Dataset items -> one batch for :meth:`PatchedModel.forward <pave.models.PatchedModel.forward>`
and ``generate``: the chat template rendered with labels masked to the answer, visual tokens
(or frames) stacked, side channels padded along time -- as :class:`~pave.tokens.VisualTokens`
and :class:`~pave.tokens.SideInputs`, the types the model reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pave.sidechannels.base import SideChannel
from pave.tokens import SideInputs, VisualTokens


@dataclass
class QACollator:
    """Items -> a batch for ``PatchedModel.forward`` / ``generate``.

    Args:
        processor: a :class:`~pave.models.processor.VideoChatProcessor`.
        train: append answers and return labels (right padding); else left-pad prompts.
    """

    processor: object
    train: bool = True

    def __call__(self, items: Sequence[dict]) -> dict:
        questions = [it["question"] for it in items]
        answers = [it["answer"] for it in items] if self.train else None
        text = {"padding_side": "right" if self.train else "left", "histories": [it.get("history", ()) for it in items]}
        if "visual" in items[0]:
            visual: list[VisualTokens] = [it["visual"] for it in items]
            frames = self.processor.layout.key_frames(visual[0].tokens.shape[1])
            batch = self.processor(questions, answers, num_frames=frames, **text)
            batch["visual"] = VisualTokens.cat(visual)
        else:
            batch = self.processor(questions, answers, frames=[it["frames"] for it in items], **text)
            batch["frame_times"] = torch.stack([it["frame_times"] for it in items])
        batch["side"] = {name: pad_side([it["side"][name] for it in items]) for name in items[0]["side"]}
        return batch


def pad_side(channels: Sequence[SideChannel]) -> SideInputs:
    """Right-pad side channels of different lengths: tokens (B, T_s, s_h, s_w, C), mask and
    timestamps (B, T_s)."""
    grids = {c.tokens.shape[1:] for c in channels}
    if len(grids) != 1:
        raise ValueError(f"side channels in one batch must share grid and width, got {sorted(grids)}")
    longest = max(c.tokens.shape[0] for c in channels)
    tokens = torch.zeros((len(channels), longest, *channels[0].tokens.shape[1:]), dtype=channels[0].tokens.dtype)
    mask = torch.zeros((len(channels), longest), dtype=torch.bool)
    timestamps = torch.zeros((len(channels), longest), dtype=torch.float32)
    for i, c in enumerate(channels):
        n = c.tokens.shape[0]
        tokens[i, :n], mask[i, :n] = c.tokens, True
        timestamps[i, :n] = c.timestamps
        timestamps[i, n:] = c.timestamps[-1]  # padded timestamps stay sorted
    return SideInputs(tokens, mask, timestamps)


