"""Base video-LLM integration: patched models over transformers, tiny models for tests."""

from pave.models.patched import PatchedModel
from pave.tokens import SideInputs, VisualTokens

__all__ = ["PatchedModel", "SideInputs", "VisualTokens"]
