"""Shared fixtures: a tiny LLaVA-OneVision saved like a real checkpoint, once per session.

Test folders have no ``__init__.py``, so pytest puts their parents on ``sys.path``: a test folder
must not share a name with a package that libraries import (``tests/data/datasets`` once hid
Hugging Face ``datasets`` from transformers' Trainer).
"""

import pytest
import torch

from pave.models.tiny import save_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llava-onevision"))


@pytest.fixture(scope="session")
def tiny_base(tiny_model_dir, tmp_path_factory):
    """family name -> a tiny model of that base family saved like its real checkpoint (built on
    first use, once per session; LLaVA-OneVision's is ``tiny_model_dir``)."""
    built = {"llava-onevision": tiny_model_dir}

    def get(family: str):
        if family not in built:
            built[family] = save_tiny_model(tmp_path_factory.mktemp(f"tiny-{family}"), family=family)
        return built[family]

    return get


@pytest.fixture(scope="session")
def real_layout_dir(tmp_path_factory):
    """A folder laid out like ``llava-hf/llava-onevision-qwen2-0.5b-ov-hf``: the processor's
    template in chat_template.json, Qwen2's text-only template in the tokenizer, the real
    special-token ids (151643-151647) and config values, 384-px frames; tiny widths."""
    return save_tiny_model(tmp_path_factory.mktemp("real-layout-llava-onevision"), real_layout=True)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synthetic_bench(tmp_path_factory):
    """A small synthetic audio-visual benchmark with its audio features extracted.

    Returns a dict: ``root`` (media root), ``train``/``test``/``pretrain`` (annotation files),
    ``audio`` (feature store).
    """
    from pave.data.synthetic import SyntheticSpec, generate
    from pave.sidechannels.extract import extract

    root = tmp_path_factory.mktemp("synthetic")
    paths = generate(root, SyntheticSpec(train_videos=8, test_videos=4, duration=4.0))
    extract("audio", root / "MUSIC-AVQA-videos-Synthetic", root / "features" / "audio", progress=False)
    return {"root": root, **paths, "audio": root / "features" / "audio"}
