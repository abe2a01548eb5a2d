"""Base video-LLM integration: patched models over transformers, tiny models for tests."""

from pave.models.llava_onevision import VisualTokens
from pave.models.patched import PatchedModel, SideInputs

__all__ = ["PatchedModel", "SideInputs", "VisualTokens"]
