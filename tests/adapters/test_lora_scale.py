"""Post-optimization (PLLaVA): scaling the LoRA update at inference, for any adapter with LoRA."""

import pytest
import torch
from transformers import LlavaOnevisionForConditionalGeneration

from pave.models.patched import PatchedModel


def test_zero_scale_gives_the_base_outputs(harness, tiny_model_dir, tmp_path):
    model = harness.model()
    batch = harness.batch(model)
    base = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        expected = base(**{k: v for k, v in batch.items() if k != "labels"}).logits
        trained = model(**batch).logits
        assert not torch.allclose(trained, expected)
        model.set_lora_scale(0.0)
        assert torch.equal(model(**batch).logits, expected)
        model.set_lora_scale(1.0)  # not compounded: back to the trained update
        torch.testing.assert_close(model(**batch).logits, trained)
    loaded = PatchedModel.from_pretrained(model.save_pretrained(tmp_path / "ft"), lora_scale=0.0)
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, expected)


def test_half_scale_halves_peft_scaling(harness):
    from peft.tuners.lora import LoraLayer

    model = harness.model("pooling", grid=(2, 2))
    model.set_lora_scale(0.5)
    scalings = {m.scaling["default"] for m in model.base.modules() if isinstance(m, LoraLayer)}
    assert scalings == {0.5 * 8 / 4}


def test_scaling_needs_lora(harness):
    with pytest.raises(ValueError, match="no LoRA"):
        harness.model(lora=False).set_lora_scale(0.5)
