"""The patch directory format: what is written is read back exactly, and a malformed directory
is refused with the file and what was expected."""

import json

import pytest
import torch

from pave.models.patch_dir import (
    PATCH_CONFIG_NAME,
    PATCH_WEIGHTS_NAME,
    check_patch_dir,
    read_patch,
    read_record,
    recorded_base,
    write_patch,
)
from pave.patch import PatchConfig, PavePatch


def small_patch() -> PavePatch:
    config = PatchConfig(side_dim=6, query_dim=4, output_dim=8, hidden_dim=8, num_heads=2, ffn_dim=8, output_mlp_dim=8, rope="temporal")
    config.base_model = "org/base"
    patch = PavePatch(config)
    with torch.no_grad():
        for param in patch.parameters():
            param.normal_()
    return patch


def test_a_written_patch_reads_back_exactly(tmp_path):
    patch = small_patch()
    record = write_patch(tmp_path, "audio", patch, "grid", converted_from={"path": "src"})
    assert read_record(tmp_path) == record
    assert record["kind"] == "pave" and record["name"] == "audio" and record["newline_position"] == "grid"
    assert record["converted_from"] == {"path": "src"}
    loaded = read_patch(tmp_path)
    assert loaded.config == patch.config
    for (name, saved), (_, read) in zip(patch.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(read, saved, rtol=0, atol=0, msg=name)
    assert recorded_base(tmp_path) == "org/base"


def edit_record(directory, **changes):
    path = directory / PATCH_CONFIG_NAME
    record = json.loads(path.read_text()) | changes
    path.write_text(json.dumps({k: v for k, v in record.items() if v is not None}))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "lora"}, "unknown patch kind 'lora'"),
        ({"kind": None}, "missing field 'kind'"),
        ({"newline_position": "row"}, "newline_position must be one of"),
        ({"config": {"side_dim": 6, "hiden_dim": 8}}, "hiden_dim"),
    ],
)
def test_a_malformed_record_is_named(tmp_path, change, message):
    write_patch(tmp_path, "audio", small_patch(), "one_token")
    edit_record(tmp_path, **change)
    with pytest.raises(ValueError, match=message) as error:
        read_patch(tmp_path)
    assert PATCH_CONFIG_NAME in str(error.value)


def test_records_that_are_not_json_objects_are_refused(tmp_path):
    write_patch(tmp_path, "audio", small_patch(), "one_token")
    (tmp_path / PATCH_CONFIG_NAME).write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_record(tmp_path)
    (tmp_path / PATCH_CONFIG_NAME).write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        read_record(tmp_path)


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    write_patch(tmp_path, "audio", small_patch(), "one_token")
    edit_record(tmp_path, config=small_patch().config.to_dict() | {"hidden_dim": 16})
    with pytest.raises(ValueError, match="weights do not match"):
        read_patch(tmp_path)


def test_pickled_weights_are_named_and_refused(tmp_path):
    write_patch(tmp_path, "audio", small_patch(), "one_token")
    (tmp_path / PATCH_WEIGHTS_NAME).unlink()
    torch.save({}, tmp_path / "patch.bin")
    with pytest.raises(ValueError, match=r"found \['patch.bin'\].*pickle checkpoints are refused"):
        check_patch_dir(tmp_path)
