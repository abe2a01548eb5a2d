"""The authors' pre-extracted features, imported into a feature store in their patches' layout."""

import pytest
import torch

from official_files import FIXTURES
from pave.batching import store_source
from pave.data.datasets import load_samples
from pave.sidechannels import FeatureStore
from pave.sidechannels.extract import extract
from pave.sidechannels.released import ReleasedFeatures


def test_each_kind_is_stored_in_the_released_layout(tmp_path):
    audio = torch.randn(5, 1024).to(torch.bfloat16)
    torch.save(audio, tmp_path / "Q7ZK1.pt")
    channel = ReleasedFeatures("audio").encode(tmp_path / "Q7ZK1.pt")
    assert channel.tokens.shape == (5, 1, 1, 1024) and channel.timestamps.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert torch.equal(channel.tokens[:, 0, 0], audio.float()) and channel.encoder == "imagebind-huge"

    dense = torch.randn(6, 5, 1024)  # CLS, then the 2x2 grid row by row
    torch.save(dense, tmp_path / "video.pt")
    channel = ReleasedFeatures("video").encode(tmp_path / "video.pt")
    assert channel.tokens.shape == (6, 2, 2, 1024) and torch.equal(channel.tokens[2, 1, 0], dense[2, 3])
    assert channel.timestamps[-1] == 2.5

    scene = torch.randn(1, 32 * 24 * 24, 1024).to(torch.bfloat16)
    (tmp_path / "scene0000_00").mkdir()
    torch.save(scene, tmp_path / "scene0000_00" / "video_features.pt")
    channel = ReleasedFeatures("3d").encode(tmp_path / "scene0000_00" / "video_features.pt")
    assert channel.tokens.shape == (32, 24, 24, 1024) and torch.equal(channel.tokens[1, 0, 3], scene[0, 24 * 24 + 3].float())

    take = tmp_path / "take"
    take.mkdir()
    views = [torch.randn(2, 196, 1152) for _ in range(3)]
    for name, view in zip(("cam02", "cam01", "cam03"), views, strict=True):
        torch.save(view, take / f"{name}.pt")
    channel = ReleasedFeatures("exo").encode(take)
    assert channel.tokens.shape == (6, 14, 14, 1152) and channel.timestamps.tolist() == [0, 0, 0, 1, 1, 1]
    # time-major, views by name: frame 1 of cam01 (written second) is token frame 3
    assert torch.equal(channel.tokens[3].reshape(196, 1152), views[1][1])


def test_import_is_a_batch_job_named_as_the_loaders_look_up(tmp_path):
    features = tmp_path / "features"
    take = features / "takes/sample_basketball_01_2/frame_aligned_videos/downscaled/448"
    take.mkdir(parents=True)
    for i in range(1, 5):
        torch.save(torch.randn(2, 196, 1152), take / f"cam0{i}.pt")
    broken = features / "takes/broken/frame_aligned_videos/downscaled/448"
    broken.mkdir(parents=True)
    torch.save(torch.randn(2, 100, 1152), broken / "cam01.pt")
    summary = extract("exo", features, tmp_path / "store", backend="released", progress=False)
    assert summary.extracted == 1 and list(summary.failed) == ["takes/broken/frame_aligned_videos/downscaled/448/cam01"]
    assert "expected a tensor shaped (T, 196, 1152), got (2, 100, 1152)" in next(iter(summary.failed.values()))
    (sample,) = load_samples("egoexo_proficiency", FIXTURES["egoexo_proficiency"](tmp_path / "annotations"))
    channel = store_source(FeatureStore(tmp_path / "store"), "exo")(sample)  # found by the loader's own key
    assert channel.tokens.shape == (8, 14, 14, 1152)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"feat": torch.zeros(3, 1024)}, "expected one tensor, got dict"),
        (torch.zeros(3, 768), "expected a tensor shaped (K, 1024), got (3, 768)"),
        (torch.full((3, 1024), float("nan")), "NaN or Inf"),
    ],
)
def test_bad_feature_files_are_named(tmp_path, content, message):
    torch.save(content, tmp_path / "clip.pt")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReleasedFeatures("audio").encode(tmp_path / "clip.pt")
