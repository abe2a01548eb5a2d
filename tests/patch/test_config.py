import json

import pytest

from pave.patch import PatchConfig


def test_json_round_trip():
    cfg = PatchConfig(side_dim=768, rope="temporal", side_grid=(1, 1), visual_grid=(14, 14), base_model="x/y")
    loaded = PatchConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert loaded == cfg
    assert loaded.visual_grid == (14, 14)  # a JSON list becomes the tuple again


def test_unknown_key_named():
    with pytest.raises(ValueError, match=r"patch_config.json.*hiden_dim"):
        PatchConfig.from_dict({"side_dim": 8, "hiden_dim": 4}, source="patch_config.json")


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
