"""The collator hands the model its own types: side channels padded into SideInputs, cached
visual tokens stacked into VisualTokens."""

import pytest
import torch

from pave.batching import QACollator, pad_side
from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor
from pave.sidechannels import SideChannel
from pave.tokens import SideInputs, VisualTokens


def channel(frames: int, start: float = 0.0) -> SideChannel:
    return SideChannel(torch.randn(frames, 1, 1, 8), start + torch.arange(frames, dtype=torch.float32), "audio", "t")


def test_side_channels_are_right_padded_with_sorted_timestamps():
    short, long = channel(2, start=5.0), channel(4)
    side = pad_side([short, long])
    assert isinstance(side, SideInputs) and side.tokens.shape == (2, 4, 1, 1, 8)
    assert side.mask.tolist() == [[True, True, False, False], [True] * 4]
    assert side.timestamps.tolist() == [[5.0, 6.0, 6.0, 6.0], [0.0, 1.0, 2.0, 3.0]]
    torch.testing.assert_close(side.tokens[0, :2], short.tokens)
    assert side.tokens[0, 2:].abs().sum() == 0
    with pytest.raises(ValueError, match="must share grid and width"):
        pad_side([short, SideChannel(torch.randn(2, 2, 2, 8), torch.arange(2.0), "video", "t")])


def test_cached_visual_items_become_one_batch_the_model_reads(tiny_model_dir):
    model = PatchedModel.from_base(str(tiny_model_dir)).eval()
    model.add_patch("audio", model.patch_config(side_dim=8, side_channel="audio", hidden_dim=16, num_heads=2))
    processor = VideoChatProcessor.from_pretrained(tiny_model_dir, model)
    grid, width = model.patches["audio"].config.visual_grid, model.config.text_config.hidden_size
    query_dim = model.patches["audio"].config.query_dim
    items = [
        {
            "question": f"question {i}?",
            "answer": "yes",
            "visual": VisualTokens(
                torch.randn(1, 2, *grid, width), torch.randn(1, 2, *grid, query_dim), torch.tensor([[0.5, 1.5]]) + i
            ),
            "side": {"audio": channel(3 + i)},
        }
        for i in range(2)
    ]
    batch = QACollator(processor)(items)
    assert isinstance(batch["visual"], VisualTokens) and batch["visual"].tokens.shape == (2, 2, *grid, width)
    assert batch["visual"].frame_times.tolist() == [[0.5, 1.5], [1.5, 2.5]]
    assert isinstance(batch["side"]["audio"], SideInputs) and batch["side"]["audio"].tokens.shape[:2] == (2, 4)
    loss = model(**batch).loss
    assert torch.isfinite(loss) and loss > 0
