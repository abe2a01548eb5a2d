"""Every adapter through the CLI, as a user runs it: train, eval (no visual-token cache), infer
and the demo's served API."""

import json

import pytest

from pave import recipes
from pave.cli import main

FRAMES = "4"
CONFIGS = {
    "interleave": "{}",
    "qformer": "{hidden_size: 16, num_heads: 2, intermediate_size: 32, video_queries: 4, side_queries: 2}",
    "pooling": "{grid: [2, 2]}",
}


@pytest.fixture(scope="module")
def trained(tiny_model_dir, synthetic_bench, tmp_path_factory):
    out = {}
    for kind, config in CONFIGS.items():
        folder = tmp_path_factory.mktemp(f"adapter-{kind}")
        args = [
            "train", str(recipes.find("tiny_audio")), f"model.base={tiny_model_dir}",
            f"data.annotations=[{synthetic_bench['train']}]", f"data.media_root={synthetic_bench['root']}",
            f"data.features={{audio: {synthetic_bench['audio']}}}", f"train.output_dir={folder}",
            "train.max_steps=2", "train.save_steps=100", f"patch.method={kind}", f"patch.config={config}",
        ]
        assert main(args) == 0
        out[kind] = folder
    return out


@pytest.fixture(scope="module")
def clip(synthetic_bench):
    return sorted((synthetic_bench["root"] / "MUSIC-AVQA-videos-Synthetic").glob("*.mp4"))[0]


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_eval_without_a_visual_cache(kind, trained, synthetic_bench, tmp_path):
    out = tmp_path / "eval"
    args = [
        "eval", "--task", "music_avqa", "--annotations", str(synthetic_bench["test"]),
        "--media-root", str(synthetic_bench["root"]), "--patch", str(trained[kind]),
        "--features", f"audio={synthetic_bench['audio']}", "--out", str(out),
        "--frames", FRAMES, "--max-new-tokens", "2",
    ]
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["counts"]["scored"] == len(json.loads(synthetic_bench["test"].read_text()))
    assert report["cost"]["method"] == kind and report["cost"]["flops_patch"] > 0


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_infer_answers_and_says_there_is_no_heatmap(kind, trained, clip, capsys, caplog, tmp_path):
    args = ["infer", "--patch", str(trained[kind]), "--video", str(clip), "--question", "What colour?",
            "--json", "--max-new-tokens", "2"]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["patches"] == ["audio" if kind != "pooling" else "pooling"]
    assert ("audio" in record["side"]) == (kind != "pooling")
    assert main([*args, "--heatmap", str(tmp_path / "h.png")]) == 1
    assert "no temporal cross-attention to draw" in caplog.text


def test_demo_answers_with_each_adapter(trained, clip):
    pytest.importorskip("gradio", reason="the demo needs gradio (extra `demo`)")
    from gradio_client import Client, handle_file

    from pave.app import launch, patch_labels

    labels = {str(path): label for label, path in patch_labels(list(trained.values())).items()}
    app = launch(list(trained.values()), port=None, block=False, max_new_tokens=2)
    try:
        client = Client(f"http://127.0.0.1:{app.server_port}/", verbose=False)
        for kind, folder in trained.items():
            answer, status, heatmap = client.predict(
                handle_file(str(clip)), [], [labels[str(folder)]], "What colour?", api_name="/respond"
            )
            assert status.startswith("Answered in"), (kind, status)
            assert heatmap is None and "No heatmap" in status
    finally:
        app.close()
