import json

import pytest
import torch

from pave.sidechannels import FeatureStore, SideChannel
from pave.sidechannels.store import item_file_name


def channel(frames=3, grid=(1, 1), dim=4, encoder="enc", seed=0):
    g = torch.Generator().manual_seed(seed)
    return SideChannel(
        torch.randn(frames, *grid, dim, generator=g), torch.arange(frames) * 0.5 + 0.25, "audio", encoder
    )


def test_round_trip_and_index(tmp_path):
    store = FeatureStore(tmp_path)
    store.put("videos/a", channel(seed=1), source="videos/a.mp4")
    store.put("b", channel(frames=5, grid=(2, 2), seed=2))
    store.flush()
    again = FeatureStore(tmp_path)
    assert again.ids() == ["b", "videos/a"] and "b" in again and "c" not in again and len(again) == 2
    got = again.get("videos/a")
    assert torch.equal(got.tokens, channel(seed=1).tokens)
    assert torch.equal(got.timestamps, channel().timestamps)
    assert (got.kind, got.encoder, again.source("videos/a")) == ("audio", "enc", "videos/a.mp4")
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["kind"] == "audio" and index["items"]["b"]["grid"] == [2, 2]
    with pytest.raises(KeyError, match="'c'"):
        again.get("c")


def test_files_are_safetensors_and_json_only(tmp_path):
    store = FeatureStore(tmp_path)
    store.put("x", channel())
    store.flush()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["index.json", f"items/{item_file_name('x')}"]  # no temporaries left behind


def test_item_file_names_are_unique_and_safe():
    names = {item_file_name(i) for i in ("a/b", "a_b", "a b", "../x")}
    assert len(names) == 4 and all("/" not in n and not n.startswith(".") for n in names)


def test_unindexed_files_are_recovered_and_missing_ones_dropped(tmp_path):
    store = FeatureStore(tmp_path)
    store.put("a", channel())
    store.flush()
    store.put("b", channel())  # written, but the run "dies" before the next flush
    (tmp_path / "items" / item_file_name("a")).unlink()
    reopened = FeatureStore(tmp_path)
    assert reopened.ids() == ["b"]


def test_mixing_encoders_is_refused(tmp_path):
    store = FeatureStore(tmp_path)
    store.put("a", channel())
    with pytest.raises(ValueError, match="cannot add"):
        store.put("b", channel(encoder="other"))
    assert not (tmp_path / "items" / item_file_name("b")).exists()


def test_side_channel_validates_shapes():
    with pytest.raises(ValueError, match="T_s, s_h, s_w, C"):
        SideChannel(torch.zeros(3, 4), torch.zeros(3), "audio", "e")
    with pytest.raises(ValueError, match="timestamps"):
        SideChannel(torch.zeros(3, 1, 1, 4), torch.zeros(2), "audio", "e")
