"""The dataset reads each sample's frames where the sample says (its window, its frame folder)
and repeats the groups a data mix names."""

import numpy as np
import pytest
from PIL import Image

from pave.batching import QADataset, repeat_samples
from pave.data.datasets import Sample
from pave.data.media import write_video


def sample(video, **fields):
    return Sample(id="s", task="mvbench", source="t.json#0", question="q", prompt="q", answers=("a",), video=video, **fields)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    write_video(root / "clip.mp4", np.zeros((60, 32, 32, 3), np.uint8), fps=10)  # 6 s
    (root / "frames").mkdir()
    for i in range(30):  # 10 s at 3 fps
        Image.fromarray(np.full((32, 32, 3), i, np.uint8)).save(root / "frames" / f"{i:05d}.jpg")
    return root


def test_key_frames_come_from_the_question_window(media):
    dataset = QADataset([sample("clip.mp4", clip=(2.0, 4.0)), sample("clip.mp4")], media, num_frames=4)
    inside, whole = dataset[0]["frame_times"], dataset[1]["frame_times"]
    assert inside.min() >= 2.0 and inside.max() <= 4.0 and len(inside) == 4
    assert whole.min() == 0.0 and whole.max() > 5.8


def test_a_frame_folder_is_read_at_its_rate(media):
    item = QADataset([sample("frames", frame_rate=3.0, clip=(1.0, 5.0))], media, num_frames=4)[0]
    np.testing.assert_allclose(item["frame_times"].numpy(), (3 + np.array([0, 4, 8, 12])) / 3.0, atol=1e-6)
    assert item["frames"].shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="a folder of frames needs its frame rate"):
        QADataset([sample("frames")], media, num_frames=4)[0]


def test_a_data_mix_repeats_the_groups_it_names():
    """The authors' Music-AVQA mix: every question whose type involves audio, twice, in place."""
    questions = [
        Sample(id=str(i), task="music_avqa", source=f"t.json#{i}", question="q", prompt="q", groups={"modality": m})
        for i, m in enumerate(["Audio", "Visual", "Audio-Visual"])
    ]
    mixed = repeat_samples(questions, {"modality=Audio": 2, "modality=Audio-Visual": 2})
    assert [s.id for s in mixed] == ["0", "0", "1", "2", "2"]
    assert repeat_samples(questions, {}) == questions
    with pytest.raises(ValueError, match="data.repeat: no sample has 'modality=Audo'; groups present: modality=Audio"):
        repeat_samples(questions, {"modality=Audo": 2})
    with pytest.raises(ValueError, match="expected '<group>=<value>: times'"):
        repeat_samples(questions, {"Audio": 2})
