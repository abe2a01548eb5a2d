"""The ``pave`` model of lmms-eval, run by lmms-eval itself on its VideoMME task with local data.

The task is lmms-eval's own ``videomme.yaml`` (its prompt, generation settings, answer extraction
and aggregation), read from a local parquet file instead of the Hub; the clips lie where its
``doc_to_visual`` looks (``$HF_HOME/videomme/data/<videoID>.mp4``) and the audio side channel comes
from a store written by ``pave extract``. The base is the tiny model made to answer one letter (A
or B), so both answer extractions have something to read and the ground truth can be set for an
accuracy of exactly 50%: lmms-eval's number, ``pave score`` on the predictions lmms-eval logged,
and the predictions themselves (against :class:`~pave.inference.Answerer` run directly) are
checked.
"""

import json
import os
import shutil
import subprocess
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from inference_media import save_patches, write_clip

lmms_eval = pytest.importorskip(
    "lmms_eval", reason="lmms-eval is not installed (`make` installs it; see docs/guides/lmms-eval.md)"
)

from lmms_eval.utils import load_yaml_config  # noqa: E402

from pave.cli import main  # noqa: E402
from pave.inference import load_for_inference  # noqa: E402
from pave.sidechannels import FeatureStore  # noqa: E402

TASK = "pave_videomme_local"
VIDEOS = ("vidA", "vidB")
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
}


def letter_base(tiny_model_dir: Path, out: Path) -> Path:
    """The tiny base with its greedy answer reduced to "A" or "B": the final norm keeps one hidden
    unit, and only the (tied) output rows of A and B read it, with opposite signs."""
    shutil.copytree(tiny_model_dir, out)
    weights = load_file(out / "model.safetensors")
    letters = AutoTokenizer.from_pretrained(out).convert_tokens_to_ids(["A", "B"])
    weights["language_model.model.norm.weight"].zero_()[0] = 1.0
    embed = weights["language_model.model.embed_tokens.weight"]
    embed[:, 0] = 0.0
    embed[letters, 0] = torch.tensor([1.0, -1.0])
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


def videomme_task():
    """lmms-eval's VideoMME task folder, its ``utils`` module and the default prompt options."""
    folder = Path(lmms_eval.__file__).parent / "tasks" / "videomme"
    spec = spec_from_file_location("videomme_utils", folder / "utils.py")
    utils = module_from_spec(spec)
    spec.loader.exec_module(utils)
    config = load_yaml_config(str(folder / "videomme.yaml"), mode="simple")
    return folder, utils, config["lmms_eval_specific_kwargs"]["default"]


def videomme_docs() -> list[dict]:
    """Rows with every VideoMME column lmms-eval's and pave's VideoMME code read; answers set later."""
    return [
        {
            "video_id": f"{n:03d}",
            "duration": "short",
            "domain": "Knowledge",
            "sub_category": "Humanity & History",
            "url": "",
            "videoID": video,
            "question_id": f"{n:03d}-{q}",
            "task_type": "Counting Problem",
            "question": question,
            "options": ["A. red", "B. blue", "C. green", "D. white"],
            "answer": "",
        }
        for n, video in enumerate(VIDEOS, 1)
        for q, question in enumerate(("What colour is the square?", "How many tones sound?"), 1)
    ]


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("lmms-eval")
    media = root / "hf-home" / "videomme"  # where lmms-eval's videomme_doc_to_visual looks
    (media / "data").mkdir(parents=True)
    for video in VIDEOS:
        write_clip(media / "data" / f"{video}.mp4")
    store = root / "features" / "audio"
    assert main(["extract", "audio", "--inputs", str(media), "--out", str(store)]) == 0
    # Log-mel audio patches with LoRA, on the letter base and on the plain tiny base.
    letter_patch = save_patches(letter_base(tiny_model_dir, root / "letter-base"), root / "letter")["audio"]
    patch = save_patches(tiny_model_dir, root / "plain")["audio"]
    return {"root": root, "media": media, "store": store, "letter_patch": letter_patch, "patch": patch}


def run_lmms_eval(root: Path, model_args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE, "HF_HOME": str(root / "hf-home")}
    command = [sys.executable, "-m", "lmms_eval", *f"--model pave --tasks {TASK} --verbosity DEBUG".split()]
    command += ["--model_args", model_args, "--include_path", str(root / "tasks")]
    command += ["--log_samples", "--output_path", str(root / "out")]
    return subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=300)


def test_lmms_eval_scores_the_plugin_as_pave_score_does(setup, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, store = setup["root"], FeatureStore(setup["store"])
    folder, utils, options = videomme_task()
    answerer = load_for_inference([setup["letter_patch"]], num_frames=4, device="cpu", dtype="float32")

    # What the plugin must answer: lmms-eval's prompt, the store's audio, one new token.
    docs = videomme_docs()
    expected = {}
    for video in VIDEOS:
        clip = setup["media"] / "data" / f"{video}.mp4"
        inputs = answerer.prepare(clip, {"audio": store.get(f"data/{video}")})
        for doc in (d for d in docs if d["videoID"] == video):
            prompt = utils.videomme_doc_to_text(doc, options)
            expected[doc["question_id"]] = answerer.answer(inputs, prompt, 1)
    assert set(expected.values()) <= {"A", "B"}, expected
    for i, doc in enumerate(docs):  # right on every other question: 50%
        prediction = expected[doc["question_id"]]
        doc["answer"] = prediction if i % 2 == 0 else {"A": "B", "B": "A"}[prediction]

    (root / "tasks").mkdir()
    pq.write_table(pa.Table.from_pylist(docs), root / "tasks" / "videomme.parquet")
    task = {
        "include": str(folder / "videomme.yaml"),
        "task": TASK,
        "dataset_path": "parquet",
        "dataset_kwargs": {"data_files": {"test": "videomme.parquet"}},
    }
    (root / "tasks" / f"{TASK}.yaml").write_text(yaml.safe_dump(task))

    # max_new_tokens=1 overrides the task's 16: a longer answer would not equal the expected one.
    args = f"patch={setup['letter_patch']},features=audio={setup['store']}"
    run = run_lmms_eval(root, args + ",frames=4,max_new_tokens=1,device=cpu,dtype=float32")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(next((root / "out").rglob("*_results.json")).read_text())["results"][TASK]
    samples = [json.loads(line) for line in next((root / "out").rglob(f"*_samples_{TASK}.jsonl")).open()]
    predictions = {s["videomme_perception_score"]["question_id"]: s["filtered_resps"] for s in samples}
    assert predictions == expected
    assert results["videomme_perception_score,none"] == pytest.approx(50.0)

    # pave score on the same predictions, from the same annotation file.
    lines = [json.dumps({"id": qid, "prediction": text}) for qid, text in predictions.items()]
    (root / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    argv = ["score", "--task", "videomme", "--predictions", str(root / "predictions.jsonl"), "--json"]
    assert main(argv + ["--annotations", str(root / "tasks" / "videomme.parquet")]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["accuracy"] == pytest.approx(50.0)


def requests_for(model, questions: list[tuple[Path, str]], gen_kwargs: dict) -> list:
    """generate_until requests as lmms-eval's tasks make them: (context, generation kwargs,
    doc_to_visual, doc_id, task, split), the docs in the model's ``task_dict``."""
    from lmms_eval.api.instance import Instance

    model.task_dict = {"t": {"test": [{"video": str(video)} for video, _ in questions]}}
    return [
        Instance(
            "generate_until",
            (question, gen_kwargs, lambda doc: [doc["video"]], i, "t", "test"),
            0,
            metadata={"task": "t", "doc_id": i, "repeats": 1},
        )
        for i, (_, question) in enumerate(questions)
    ]


@pytest.fixture(scope="module")
def model(setup):
    from pave.integrations.lmms_eval import PaveModel

    return PaveModel(patch=str(setup["patch"]), features=f"audio={setup['store']}", frames=4, device="cpu")


def test_generate_until_asks_the_answerer_about_each_request(setup, model, monkeypatch):
    """Each request's context, video, stored side channel, generation length and stop sequence reach
    the Answerer, each video is prepared once, and the answers come back in the requests' order."""
    store, calls = FeatureStore(setup["store"]), []
    prepare = model.answerer.prepare

    def spy_prepare(video, side):
        stored = store.get(f"data/{video.stem}").tokens
        calls.append(("prepare", video.name, torch.equal(side["audio"].tokens, stored)))
        return prepare(video, side)

    def spy_answer(inputs, question, max_new_tokens):
        calls.append(("answer", inputs.video.name, question, max_new_tokens))
        return f"{question} about {inputs.video.name}\n\nQuestion: and another"

    monkeypatch.setattr(model.answerer, "prepare", spy_prepare)
    monkeypatch.setattr(model.answerer, "answer", spy_answer)
    first, second = (setup["media"] / "data" / f"{video}.mp4" for video in VIDEOS)
    questions = [(second, "Which colour?"), (first, "How many tones?"), (second, "Is it red?")]
    answers = model.generate_until(requests_for(model, questions, {"max_new_tokens": 8, "until": ["\n\n"]}))

    assert answers == [f"{question} about {video.name}" for video, question in questions]
    assert calls == [
        ("prepare", "vidA.mp4", True),
        ("answer", "vidA.mp4", "How many tones?", 8),
        ("prepare", "vidB.mp4", True),
        ("answer", "vidB.mp4", "Which colour?", 8),
        ("answer", "vidB.mp4", "Is it red?", 8),
    ]


def test_a_video_missing_from_the_store_names_the_item_and_the_store(setup, model):
    video = setup["root"] / "unindexed.mp4"
    shutil.copy(setup["media"] / "data" / f"{VIDEOS[0]}.mp4", video)
    with pytest.raises(KeyError, match=r"unindexed\.mp4.*feature store .*features[/\\]audio"):
        model.generate_until(requests_for(model, [(video, "Which colour?")], {"max_new_tokens": 1}))


def test_model_args():
    from pave.integrations.lmms_eval import cut_at_stop, parse_features, split_list, store_keys

    assert split_list("out/a+out/b") == ["out/a", "out/b"] and split_list(None) == []
    keys = store_keys("/cache/videomme/data/abc.mp4")
    assert keys[:4] == ["cache/videomme/data/abc", "videomme/data/abc", "data/abc", "abc"]
    assert keys[-1] == "abc.mp4"
    assert cut_at_stop("B. blue\n\nQuestion:", ["\n\n"]) == "B. blue"
    with pytest.raises(ValueError, match="channel=store_dir"):
        parse_features("features/audio")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        parse_features("audio=does/not/exist")
