import json

import pytest

from pave.patch import PatchConfig


def test_json_round_trip(tmp_path):
    cfg = PatchConfig(side_dim=768, rope="temporal", side_grid=(1, 1), visual_grid=(14, 14), base_model="x/y")
    cfg.save(tmp_path / "patch_config.json")
    loaded = PatchConfig.load(tmp_path / "patch_config.json")
    assert loaded == cfg
    assert loaded.visual_grid == (14, 14)


def test_unknown_key_named(tmp_path):
    path = tmp_path / "patch_config.json"
    path.write_text(json.dumps({"side_dim": 8, "hiden_dim": 4}))
    with pytest.raises(ValueError, match=r"hiden_dim.*patch_config.json|patch_config.json.*hiden_dim"):
        PatchConfig.load(path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden_dim=10, num_heads=4), "divisible"),
        (dict(rope="4d"), "rope"),
        (dict(query_source="learnable"), "query_grid"),
        (dict(time_window=2.0), "time_window"),
        (dict(visual_grid=(0, 3)), "visual_grid"),
    ],
)
def test_invalid_settings_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PatchConfig(**kwargs)


def test_not_json(tmp_path):
    path = tmp_path / "patch_config.json"
    path.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        PatchConfig.load(path)
