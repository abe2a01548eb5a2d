"""Shared fixtures: a tiny LLaVA-OneVision saved like a real checkpoint, once per session."""

import pytest
import torch

from pave.models.tiny import save_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llava-onevision"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
