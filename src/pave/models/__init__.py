"""Base video-LLM integration: patched models over transformers, tiny models for tests."""
