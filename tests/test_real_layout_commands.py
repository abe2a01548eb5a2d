"""Every command on a checkpoint folder laid out like the released LLaVA-OneVision 0.5B (see the
``real_layout_dir`` fixture): train, eval, infer (patched and the base alone), the demo and the
quickstart run on it as they do on the real checkpoint."""

import json

import pytest

from pave.cli import main
from pave.quickstart import QuickstartSettings, run
from pave.recipes import find

FRAMES = "2"


@pytest.fixture(scope="module")
def trained(real_layout_dir, synthetic_bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("real-layout-train")
    args = [
        "train", str(find("tiny_audio")),
        f"model.base={real_layout_dir}", f"model.num_frames={FRAMES}",
        f"data.annotations=[{synthetic_bench['train']}]", f"data.media_root={synthetic_bench['root']}",
        f"data.features={{audio: {synthetic_bench['audio']}}}", f"train.output_dir={out}",
        "train.max_steps=2", "train.save_steps=2",
    ]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def clip(synthetic_bench):
    return sorted((synthetic_bench["root"] / "MUSIC-AVQA-videos-Synthetic").glob("*.mp4"))[0]


def test_train_saves_a_patch_recording_the_base(trained, real_layout_dir):
    config = json.loads((trained / "patch_config.json").read_text())
    assert config["config"]["base_model"] == str(real_layout_dir)
    assert config["config"]["visual_grid"] == [14, 14]
    assert (trained / "adapter_model.safetensors").exists()


def test_eval_answers_and_scores(trained, synthetic_bench, tmp_path, capsys):
    out = tmp_path / "eval"
    args = [
        "eval", "--task", "music_avqa", "--annotations", str(synthetic_bench["test"]),
        "--media-root", str(synthetic_bench["root"]), "--patch", str(trained),
        "--features", f"audio={synthetic_bench['audio']}", "--out", str(out),
        "--frames", FRAMES, "--max-new-tokens", "2", "--batch-size", "4", "--dtype", "float32",
    ]
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["counts"]["scored"] == len(json.loads(synthetic_bench["test"].read_text()))
    # 2 frames x 14 x 14 + the newline token, as the released model scatters them.
    assert report["cost"]["llm_tokens"] > 2 * 196


@pytest.mark.parametrize("with_patch", [True, False], ids=["patched", "base-alone"])
def test_infer_json(trained, real_layout_dir, clip, capsys, with_patch):
    model = ["--patch", str(trained)] if with_patch else ["--base", str(real_layout_dir)]
    args = ["infer", *model, "--video", str(clip), "--question", "What colour?", "--json", "--frames", FRAMES, "--max-new-tokens", "2"]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["patches"] == (["audio"] if with_patch else [])
    assert isinstance(record["answer"], str)


def test_demo_answers_through_its_served_api(trained, clip):
    pytest.importorskip("gradio", reason="the demo needs gradio (extra `demo`)")
    from gradio_client import Client, handle_file

    from pave.app import launch

    app = launch([trained], port=None, block=False, max_new_tokens=2)
    try:
        client = Client(f"http://127.0.0.1:{app.server_port}/", verbose=False)
        answer, status, heatmap = client.predict(
            handle_file(str(clip)), [], [trained.name], "What colour?", api_name="/respond"
        )
    finally:
        app.close()
    assert status.startswith("Answered in") and "audio" in status
    assert heatmap is not None


def test_quickstart_on_the_real_layout(real_layout_dir, tmp_path):
    settings = QuickstartSettings.fast(out=str(tmp_path / "qs"), base=str(real_layout_dir), num_frames=2, batch_size=4, epochs=1.0)
    settings.data.train_videos, settings.data.test_videos = 4, 2
    results = run(settings, methods=["zero-shot", "pave"])
    zero, pave = results["rows"]
    assert zero["llm_tokens"] == pave["llm_tokens"] and pave["params_trainable"] > 0
    assert (tmp_path / "qs" / "pave" / "patch_config.json").exists()
