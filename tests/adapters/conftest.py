"""A harness the adapter tests share: a tiny base with LoRA and one adapter, batches whose
prompts the processor sizes from the model's token layout, and a save/load round trip."""

import pytest
import torch
from transformers import AutoTokenizer

from pave.models.patched import PatchedModel
from pave.models.processor import VideoChatProcessor
from pave.tokens import SideInputs

FRAMES = 4
SIDE_DIM = 12


class Harness:
    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def model(self, kind: str | None = None, lora: bool = True, **config) -> PatchedModel:
        """The tiny base with LoRA (randomised, so it matters) and adapter ``kind`` named ``audio``."""
        model = PatchedModel.from_base(str(self.model_dir))
        if lora:
            model.add_lora(r=4, alpha=8, dropout=0.0)
            with torch.no_grad():
                for name, p in model.base.named_parameters():
                    if "lora_B" in name:
                        p.normal_(std=0.1)
        if kind is not None:
            model.add_patch("audio", model.adapter_config(kind, **config))
        return model.eval()

    def processor(self, model: PatchedModel) -> VideoChatProcessor:
        return VideoChatProcessor.from_pretrained(self.model_dir, model)

    def batch(self, model: PatchedModel, padding_side: str = "right") -> dict:
        frames = [torch.randint(0, 256, (FRAMES, 20, 24, 3), dtype=torch.uint8) for _ in range(2)]
        return self.processor(model)(
            ["what colour is the circle?", "how many beeps?"], ["red", "two blue"], frames=frames,
            padding_side=padding_side,
        )

    @staticmethod
    def side(lengths=(7, 3)) -> dict[str, SideInputs]:
        tokens = torch.randn(len(lengths), max(lengths), 1, 1, SIDE_DIM)
        mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
        return {"audio": SideInputs(tokens, mask)}

    def video_placeholders(self, model: PatchedModel, batch: dict) -> list[int]:
        return (batch["input_ids"] == model.config.video_token_id).sum(dim=1).tolist()

    def base_placeholders(self) -> int:
        """Placeholders of one video for the plain base: FRAMES x grid + the newline token."""
        return self.video_placeholders(self.model(lora=False), self.batch(self.model(lora=False)))[0]

    def backward(self, model: PatchedModel) -> set[str]:
        """One training step's gradients; returns the names of the parameters that got one."""
        model.train()
        for p in model.patches.parameters():
            p.requires_grad_(True)
        loss = model(**self.batch(model), side=self.side()).loss
        loss.backward()
        assert torch.isfinite(loss)
        return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}

    def assert_round_trip(self, model: PatchedModel, directory) -> PatchedModel:
        """Saved and reloaded (from the base recorded in the saved config), logits are equal."""
        batch, side = self.batch(model), self.side()
        with torch.no_grad():
            expected = model(**batch, side=side).logits
        out = model.save_pretrained(directory)
        assert (out / "patch.safetensors").exists() and (out / "adapter_model.safetensors").exists()
        loaded = PatchedModel.from_pretrained(out)
        assert type(loaded.patches["audio"]) is type(model.patches["audio"])
        with torch.no_grad():
            torch.testing.assert_close(loaded(**batch, side=side).logits, expected)
        return loaded


@pytest.fixture(scope="module")
def harness(tiny_model_dir):
    return Harness(tiny_model_dir)
