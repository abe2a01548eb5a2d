"""Inputs for a PatchedModel in tests: a batch of two questions about random frames and an audio
side channel of two lengths, and a way to make a new patch's output non-zero."""

import torch

from pave.tokens import SideInputs

FRAMES = 4


def make_batch(processor, answers=("red", "two blue"), padding_side="right"):
    frames = [torch.randint(0, 256, (FRAMES, 20, 24, 3), dtype=torch.uint8) for _ in answers]
    questions = ["what colour is the circle?", "how many beeps?"][: len(answers)]
    return processor(questions, list(answers), frames=frames, padding_side=padding_side)


def audio(batch_size=2, lengths=(7, 3), dim=12):
    tokens = torch.randn(batch_size, max(lengths), 1, 1, dim)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    return {"audio": SideInputs(tokens, mask)}


def randomize_output(model, name):
    """The patch's output LayerNorm drawn at random: at init its zero gain makes the patch a no-op."""
    with torch.no_grad():
        model.patches[name].output_norm.weight.normal_()
        model.patches[name].output_norm.bias.normal_()
