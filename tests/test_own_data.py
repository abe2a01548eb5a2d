"""Your own data through the CLI: a plain `qa` file trains, evaluates (each question by its
kind) and is extracted from, without disguising it as a benchmark."""

import json

from pave import recipes
from pave.cli import main
from pave.data.datasets import load_samples
from pave.sidechannels import FeatureStore


def own_file(bench, tmp_path):
    """Questions about the synthetic videos in the generic format: free-form, multiple choice,
    a dialogue turn and a caption-scored answer."""
    records = []
    for sample in load_samples("music_avqa", [bench["train"]]):
        video = sample.video
        if sample.groups["modality"] == "Audio":
            records.append({"video": video, "question": sample.question, "answer": sample.answers[0]})
        elif sample.groups["modality"] == "Visual":
            choices = sorted({sample.answers[0], "circle", "square"})
            records.append({"video": video, "question": sample.question, "choices": choices, "answer": sample.answers[0]})
        else:
            records.append(
                {"video": video, "question": sample.question, "answer": sample.answers[0], "metric": "caption",
                 "conversation": [{"question": "Is there a sound?", "answer": "yes"}]}
            )
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, len(records)


def test_train_eval_and_extract_on_your_own_file(tiny_model_dir, synthetic_bench, tmp_path, capsys):
    own, count = own_file(synthetic_bench, tmp_path)
    store = tmp_path / "audio"
    assert main(["extract", "audio", "--inputs", str(own), "--media-root", str(synthetic_bench["root"]), "--out", str(store)]) == 0
    assert len(FeatureStore(store)) == len({json.loads(line)["video"] for line in own.read_text().splitlines()})

    out = tmp_path / "run"
    args = [
        "train", str(recipes.find("tiny_audio")), f"model.base={tiny_model_dir}", "data.task=qa",
        f"data.annotations=[{own}]", f"data.media_root={synthetic_bench['root']}",
        f"data.features={{audio: {store}}}", f"train.output_dir={out}", "train.max_steps=2",
    ]
    assert main(args) == 0
    evaluated = tmp_path / "eval"
    args = [
        "eval", "--task", "qa", "--annotations", str(own), "--media-root", str(synthetic_bench["root"]),
        "--patch", str(out), "--features", f"audio={store}", "--out", str(evaluated), "--max-new-tokens", "3",
    ]
    assert main(args) == 0
    report = json.loads((evaluated / "metrics.json").read_text())
    assert report["counts"]["scored"] == count
    assert {"accuracy", "EM@1", "EM@1 refined", "CIDEr"} <= set(report["metrics"])
