"""Bad input through the command line: a one-line message naming the file or field, the right
exit code, no traceback, nothing broken written.

The corpus is generated here (no binary fixtures): one row of CASES per case, built by a small
function, and the annotation cases of every task from ANNOTATION_FIELDS (one line per task: each
required field missing, then of the wrong type, plus bytes that are not UTF-8, a truncated file
and a top level of the wrong kind).
"""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from official_files import FIXTURES
from pave import recipes
from pave.cli import main
from pave.data.datasets import TASKS
from pave.data.media import write_video
from pave.models.patched import PatchedModel


@pytest.fixture(scope="module")
def patch_dir(tiny_model_dir, tmp_path_factory):
    model = PatchedModel.from_base(str(tiny_model_dir))
    model.add_patch("audio", model.patch_config(side_dim=256, side_channel="audio", hidden_dim=16, num_heads=2))
    return model.save_pretrained(tmp_path_factory.mktemp("good") / "patch")


def train_args(tiny_model_dir, bench, out, features=None, *extra):
    return [
        "train", str(recipes.find("tiny_audio")), f"model.base={tiny_model_dir}",
        f"data.annotations=[{bench['train']}]", f"data.media_root={bench['root']}",
        f"data.features={{audio: {features or bench['audio']}}}", f"train.output_dir={out}", *extra,
    ]


def rewrite_item(store, transform):
    """A copy of the feature store whose first item's tokens are replaced by ``transform(tokens)``."""
    item = sorted((store / "items").glob("*.safetensors"))[0]
    with safe_open(item, framework="pt") as f:
        meta, tokens = f.metadata(), f.get_tensor("tokens")
    save_file({"tokens": transform(tokens).contiguous()}, item, metadata=meta)
    return json.loads(meta["pave"])["id"]


def nan_feature(ctx):
    store = ctx["tmp"] / "store"
    shutil.copytree(ctx["bench"]["audio"], store)
    item = rewrite_item(store, lambda t: t.index_fill(0, torch.tensor([0]), float("nan")))
    return train_args(ctx["base"], ctx["bench"], ctx["tmp"] / "run", store), [item, "NaN or Inf"]


def empty_feature(ctx):
    store = ctx["tmp"] / "store"
    shutil.copytree(ctx["bench"]["audio"], store)
    rewrite_item(store, lambda t: t[:0])
    return train_args(ctx["base"], ctx["bench"], ctx["tmp"] / "run", store), ["tokens are empty"]


def diverging_training(ctx):
    extra = ("train.learning_rate=1e30", "train.max_steps=4", "train.save_steps=100")
    return train_args(ctx["base"], ctx["bench"], ctx["tmp"] / "run", None, *extra), ["non-finite training loss"]


def inf_weights_with_a_finite_loss(ctx):
    extra = ("train.learning_rate=1e39", "train.max_steps=1", "train.save_steps=1", "train.warmup_ratio=0")
    return train_args(ctx["base"], ctx["bench"], ctx["tmp"] / "run", None, *extra), ["non-finite trainable weights after step 1"]


def unknown_task_before_the_base_loads(ctx):
    args = train_args("./no/such/base", ctx["bench"], ctx["tmp"] / "run", None, "data.task=avqa_typo")
    return args, ["unknown task 'avqa_typo'"]  # named before the missing base is noticed


def nan_patch_weights(ctx):
    patch = ctx["tmp"] / "patch"
    shutil.copytree(ctx["patch"], patch)
    with safe_open(patch / "patch.safetensors", framework="pt") as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}
    weights[next(iter(weights))] = torch.full_like(next(iter(weights.values())), float("inf"))
    save_file(weights, patch / "patch.safetensors")
    return infer_args(patch, ctx), [str(patch / "patch.safetensors"), "NaN or Inf values"]


def truncated_patch(ctx):
    patch = ctx["tmp"] / "patch"
    shutil.copytree(ctx["patch"], patch)
    data = (patch / "patch.safetensors").read_bytes()
    (patch / "patch.safetensors").write_bytes(data[: len(data) // 2])
    return infer_args(patch, ctx), [str(patch / "patch.safetensors"), "not a readable safetensors file"]


def cuda_without_gpu(ctx):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    return [*infer_args(ctx["patch"], ctx), "--device", "cuda"], ["torch sees no CUDA GPU"]


def patch_without_config(ctx):
    patch = ctx["tmp"] / "patch"
    shutil.copytree(ctx["patch"], patch)
    (patch / "patch_config.json").unlink()
    return infer_args(patch, ctx), [f"{patch}: patch.safetensors without patch_config.json"]


def lora_without_config(ctx):
    patch = ctx["tmp"] / "patch"
    shutil.copytree(ctx["patch"], patch)
    (patch / "adapter_model.safetensors").write_bytes((patch / "patch.safetensors").read_bytes())
    return infer_args(patch, ctx), [f"{patch}: adapter_model.safetensors without adapter_config.json"]


def missing_local_base(ctx):
    return ["infer", "--base", "./no/such/model", "--video", "v.mp4", "--question", "q"], ["./no/such/model: no such model folder"]


def empty_batch(ctx):
    (ctx["tmp"] / "q.jsonl").write_text("\n")
    return ["infer", "--patch", str(ctx["patch"]), "--batch", str(ctx["tmp"] / "q.jsonl")], ["q.jsonl: no questions in the file"]


def eval_args(ctx, *extra):
    bench = ctx["bench"]
    return [
        "eval", "--task", "music_avqa", "--annotations", str(bench["test"]), "--media-root", str(bench["root"]),
        "--patch", str(ctx["patch"]), "--features", f"audio={bench['audio']}", *extra,
    ]


def out_is_a_file(ctx):
    (ctx["tmp"] / "taken").write_text("")
    return eval_args(ctx, "--out", str(ctx["tmp"] / "taken")), ["--out", "is a file"]


def batch_size_zero(ctx):
    return eval_args(ctx, "--out", str(ctx["tmp"] / "e"), "--batch-size", "0"), ["--batch-size: must be at least 1, got 0"]


def negative_frames(ctx):
    return [*infer_args(ctx["patch"], ctx), "--frames", "-3"], ["--frames: must be at least 1, got -3"]


def wrong_type_in_patch_config(ctx):
    patch = ctx["tmp"] / "patch"
    shutil.copytree(ctx["patch"], patch)
    record = json.loads((patch / "patch_config.json").read_text())
    record["config"]["num_heads"] = "4"
    (patch / "patch_config.json").write_text(json.dumps(record))
    return infer_args(patch, ctx), [f"{patch / 'patch_config.json'}: field 'num_heads' must be an integer, got '4'"]


def missing_feature_store(ctx):
    args = eval_args(ctx, "--out", str(ctx["tmp"] / "e"))
    args[args.index("--features") + 1] = f"audio={ctx['tmp'] / 'nowhere'}"
    return args, [f"--features audio: {ctx['tmp'] / 'nowhere'}: no such folder"]


def foreign_store_index(ctx):
    store = ctx["tmp"] / "store"
    shutil.copytree(ctx["bench"]["audio"], store)
    (store / "index.json").write_text('{"items": []}')
    return train_args(ctx["base"], ctx["bench"], ctx["tmp"] / "run", store), [f"{store / 'index.json'}: not a PAVE feature store index"]


def malformed_adapter_config(ctx):
    patch = ctx["tmp"] / "patch"
    shutil.copytree(ctx["patch"], patch)
    (patch / "adapter_config.json").write_text("{not json")
    return infer_args(patch, ctx), [f"{patch / 'adapter_config.json'}: not valid JSON"]


def infer_args(patch, ctx):
    clip = sorted((ctx["bench"]["root"] / "MUSIC-AVQA-videos-Synthetic").glob("*.mp4"))[0]
    return ["infer", "--patch", str(patch), "--video", str(clip), "--question", "what pitch?", "--json"]


# --- annotations, generated per task -------------------------------------------------------

# task -> the fields of its first record that the loader requires
ANNOTATION_FIELDS = {
    "avsd": ("image_id", "dialog"),
    "avqa": ("id", "video_name", "question_text", "multi_choice", "answer", "question_type"),
    "music_avqa": ("video_id", "question_id", "type", "question_content", "templ_values", "anser"),
    "scanqa": ("question_id", "scene_id", "question"),
    "sqa3d": ("question_id", "scene_id", "situation", "question"),
    "egoexo_proficiency": ("take_uid", "video_paths", "proficiency_score", "scenario_name"),
    "llava_video": ("id", "video", "conversations"),
    "videomme": ("question_id", "videoID", "question", "options", "answer", "duration", "domain", "task_type"),
    "mvbench": ("video", "question", "candidates", "answer"),
    "mlvu": ("video", "question", "candidates", "answer", "question_type"),
    "qa": ("video", "question"),
}


def edit_first_record(path, change):
    """Apply ``change(record)`` to the first record of an annotation file, in its own layout."""
    if path.suffix == ".jsonl":
        lines = path.read_text().splitlines()
        record = json.loads(lines[0])
        change(record)
        path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
        return
    content = json.loads(path.read_text())
    records = content if isinstance(content, list) else next(content[k] for k in ("dialogs", "annotations", "questions") if k in content)
    change(records[0])
    path.write_text(json.dumps(content))


def annotation_case(task, breaker):
    def build(ctx):
        files = FIXTURES[task](ctx["tmp"] / "annotations")
        fragments = breaker(files[0])
        return ["ids", "--task", task, "--annotations", *map(str, files)], fragments

    return build


def missing_field(name):
    def breaker(path):
        edit_first_record(path, lambda record: record.pop(name))
        return [f"{path}, record 0, field '{name}': missing"]

    return breaker


def wrong_type(name):
    def breaker(path):
        def change(record):  # an object where a value is expected, a list where an object is
            record[name] = ["a", "list"] if isinstance(record[name], dict) else {"an": "object"}

        edit_first_record(path, change)
        return [f"{path}, record 0, field '{name}': expected"]

    return breaker


def not_utf8(path):
    path.write_bytes(b"\xff" + path.read_bytes())
    return [f"{path}: not UTF-8 text (byte 0xff at offset 0)"]


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return [str(path), "not valid JSON"]


def top_level_string(path):
    path.write_text('"one string"\n')
    return [str(path), "expected"]


ANNOTATION_CASES = {}
for _task in TASKS:
    for _breaker, _what in ((not_utf8, "bytes that are not UTF-8"), (truncated, "a truncated file"), (top_level_string, "a string at the top level")):
        ANNOTATION_CASES[f"{_task} annotations: {_what}"] = (annotation_case(_task, _breaker), 1)
    for _name in ANNOTATION_FIELDS[_task]:
        ANNOTATION_CASES[f"{_task} annotations: {_name} missing"] = (annotation_case(_task, missing_field(_name)), 1)
        ANNOTATION_CASES[f"{_task} annotations: {_name} of the wrong type"] = (annotation_case(_task, wrong_type(_name)), 1)


# --- predictions -----------------------------------------------------------------------------


def predictions_case(content, fragment):
    def build(ctx):
        path = ctx["tmp"] / "predictions.jsonl"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        args = ["score", "--task", "music_avqa", "--annotations", str(ctx["bench"]["test"]), "--predictions", str(path)]
        return args, [str(path), fragment]

    return build


PREDICTION_CASES = {
    "predictions: not UTF-8": (predictions_case(b'{"id": "0@0", "prediction": "\xff"}\n', "not UTF-8 text"), 1),
    "predictions: a torn line": (predictions_case('{"id": "0@0", "predic\n', "line 1: not valid JSON"), 1),
    "predictions: no id": (predictions_case('{"prediction": "x"}\n', "line 1: missing field 'id'"), 1),
    "predictions: no prediction": (predictions_case('{"id": "0@0"}\n', "line 1: missing field 'prediction'"), 1),
    "predictions: a number as the answer": (predictions_case('{"id": "0@0", "prediction": 3}\n', "field 'prediction' must be a string"), 1),
    "predictions: an id twice": (predictions_case('{"id": "a", "prediction": "x"}\n{"id": "a", "prediction": "y"}\n', "line 2: id 'a' already appeared on line 1"), 1),
    "predictions: a list, not an object": (predictions_case('["0@0", "x"]\n', "line 1: expected an object"), 1),
    "predictions: a file that does not exist": (lambda ctx: (["score", "--task", "music_avqa", "--annotations", str(ctx["bench"]["test"]), "--predictions", str(ctx["tmp"] / "none.jsonl")], [str(ctx["tmp"] / "none.jsonl")]), 1),
}


# --- recipes ---------------------------------------------------------------------------------


def recipe_case(text, fragments, *overrides):
    """``pave train`` on a recipe file with ``text`` (bytes or str) and the overrides."""

    def build(ctx):
        path = ctx["tmp"] / "recipe.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["train", str(path), *overrides], [f.format(recipe=path) for f in fragments]

    return build


def good_recipe_case(fragments, *overrides):
    """``pave train`` on the tiny recipe with working data, and ``overrides`` that break it."""

    def build(ctx):
        return train_args(ctx["base"], ctx["bench"], ctx["tmp"] / "run", None, *overrides), fragments

    return build


RECIPE_CASES = {
    "recipe: not UTF-8": (recipe_case(b"train:\n  epochs: 1 # \xff\n", ["{recipe}: not UTF-8 text"]), 1),
    "recipe: not YAML": (recipe_case("train: [1\n", ["{recipe}: not valid YAML"]), 1),
    "recipe: a list at the top": (recipe_case("- train\n", ["{recipe}: expected a mapping of sections"]), 1),
    "recipe: an unknown section": (recipe_case("trian:\n  epochs: 1\n", ["{recipe}: unknown key trian"]), 1),
    "recipe: an unknown key in the file": (recipe_case("train:\n  epoch: 1\n", ["{recipe}: unknown key train.epoch"]), 1),
    "recipe: a wrong type in the file": (recipe_case("lora:\n  r: many\n", ["{recipe}: lora.r must be int"]), 1),
    "recipe: an unknown key in an override": (recipe_case("train:\n  epochs: 1\n", ["override 'train.lr=1': unknown key train.lr"], "train.lr=1"), 1),
    "recipe: a wrong type in an override": (recipe_case("train:\n  epochs: 1\n", ["override 'train.epochs=many': train.epochs must be float"], "train.epochs=many"), 1),
    "recipe: an override without =": (recipe_case("train:\n  epochs: 1\n", ["override 'train.epochs': expected key=value"], "train.epochs"), 1),
    "recipe: a file that does not exist": (lambda ctx: (["train", str(ctx["tmp"] / "none.yaml")], ["none.yaml"]), 1),
    "recipe: an unknown method": (good_recipe_case(["patch.method must be one of"], "patch.method=lora"), 1),
    "recipe: a data mix no sample matches": (good_recipe_case(["data.repeat: no sample has 'modality=Audo'"], "data.repeat={modality=Audo: 2}"), 1),
    "recipe: a side channel without a store": (good_recipe_case(["patch.side_channel='video' has no feature store in data.features"], "patch.side_channel=video"), 1),
    "recipe: an annotation file that does not exist": (good_recipe_case(["nowhere.json"], "data.annotations=[nowhere.json]"), 1),
    "recipe: a dtype torch does not have": (good_recipe_case(["model.dtype"], "model.dtype=float7"), 1),
}


# --- media: extraction is a batch job that names each bad file and goes on --------------------


def media_case(name, write_bad, fragment, kind="audio"):
    def build(ctx):
        folder = ctx["tmp"] / "media"
        folder.mkdir()
        shutil.copy(sorted((ctx["bench"]["root"] / "MUSIC-AVQA-videos-Synthetic").glob("*.mp4"))[0], folder / "good.mp4")
        bad = folder / name
        write_bad(bad, ctx)
        return ["extract", kind, "--inputs", str(folder), "--out", str(ctx["tmp"] / "store")], [f"failed {bad.stem}", str(bad), fragment]

    return build


def silent_video(path, ctx):
    write_video(path, torch.zeros(8, 32, 32, 3, dtype=torch.uint8).numpy(), fps=8)


def half_of_a_video(path, ctx):
    data = next((ctx["bench"]["root"] / "MUSIC-AVQA-videos-Synthetic").glob("*.mp4")).read_bytes()
    path.write_bytes(data[: len(data) // 3])


MEDIA_CASES = {
    "media: an empty .mp4": (media_case("empty.mp4", lambda p, c: p.write_bytes(b""), "MediaError"), 0),
    "media: text named .mp4": (media_case("text.mp4", lambda p, c: p.write_text("not a video"), "MediaError"), 0),
    "media: a truncated .mp4": (media_case("cut.mp4", half_of_a_video, "MediaError"), 0),
    "media: a video without sound, for audio": (media_case("silent.mp4", silent_video, "no audio stream"), 0),
    "media: text named .wav": (media_case("noise.wav", lambda p, c: p.write_text("RIFF?"), "MediaError"), 0),
    "media: a folder with nothing to extract": (lambda ctx: (["extract", "audio", "--inputs", str(ctx["tmp"]), "--out", str(ctx["tmp"] / "store")], ["no items found"]), 1),
}


# --- CLI misuse ------------------------------------------------------------------------------


def replaced(args, flag, value):
    """``args`` with the value after ``flag`` replaced."""
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


def short_videos_only(ctx):
    path = FIXTURES["llava_video"](ctx["tmp"])[0]
    records = json.loads(path.read_text())
    path.write_text(json.dumps([{**r, "data_source": "0_30_s_academic_v0_1"} for r in records]))
    args = ["subset", "--task", "llava_video", "--annotations", str(path), "--out", str(ctx["tmp"] / "s.json")]
    return args, ["no record of a video over one minute"]


def eval_skipping(spoil):
    """``pave eval`` on a copy of the benchmark where ``spoil(media_root, store)`` breaks one
    sample: that sample is skipped and named, the rest scored (exit 0)."""

    def build(ctx):
        root, store = ctx["tmp"] / "media", ctx["tmp"] / "store"
        shutil.copytree(ctx["bench"]["root"], root, ignore=shutil.ignore_patterns("features"))
        shutil.copytree(ctx["bench"]["audio"], store)
        fragment = spoil(root, store)
        args = eval_args(ctx, "--out", str(ctx["tmp"] / "e"), "--frames", "2", "--max-new-tokens", "2", "--batch-size", "4")
        args = replaced(replaced(args, "--media-root", str(root)), "--features", f"audio={store}")
        return args, ["skipping sample", fragment, "sample(s) skipped"]

    return build


def corrupt_test_video(root, store):
    bad = sorted((root / "MUSIC-AVQA-videos-Synthetic").glob("syn_test_*.mp4"))[0]
    bad.write_bytes(b"not a video")
    return str(bad)


def missing_test_features(root, store):
    for item in (store / "items").glob("syn_test_00001-*.safetensors"):
        item.unlink()
    (store / "index.json").unlink()  # rebuilt from the items left
    return "no audio features"


def batch_with_a_missing_video(ctx):
    clip = sorted((ctx["bench"]["root"] / "MUSIC-AVQA-videos-Synthetic").glob("*.mp4"))[0]
    missing = ctx["tmp"] / "gone.mp4"
    lines = [{"video": str(missing), "question": "what pitch?"}, {"video": str(clip), "question": "what pitch?"}]
    batch = ctx["tmp"] / "q.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["infer", "--patch", str(ctx["patch"]), "--batch", str(batch), "--json", "--frames", "2", "--max-new-tokens", "2"]
    return args, [f"{batch}, question 1 ({missing}): skipped", "answered 1 of 2 questions"]


MISUSE_CASES = {
    "infer --batch: a missing video among good ones": (batch_with_a_missing_video, 0),
    "eval: a corrupt video among good ones": (eval_skipping(corrupt_test_video), 0),
    "eval: a sample whose features are missing": (eval_skipping(missing_test_features), 0),
    "eval: --features without NAME=": (lambda ctx: (replaced(eval_args(ctx, "--out", str(ctx["tmp"] / "e")), "--features", "audio"), ["--features takes NAME=STORE, got 'audio'"]), 1),
    "eval: neither --patch nor --base": (lambda ctx: (["eval", "--task", "music_avqa", "--annotations", str(ctx["bench"]["test"]), "--media-root", ".", "--out", str(ctx["tmp"] / "e")], ["give --patch DIR"]), 1),
    "eval: a patch folder that does not exist": (lambda ctx: (replaced(eval_args(ctx, "--out", str(ctx["tmp"] / "e")), "--patch", str(ctx["tmp"] / "none")), [str(ctx["tmp"] / "none")]), 1),
    "eval: an unknown task": (lambda ctx: (["eval", "--task", "avqa2", "--annotations", "a.json", "--media-root", ".", "--out", "o"], ["invalid choice: 'avqa2'"]), 2),
    "infer: a video that does not exist": (lambda ctx: (replaced(infer_args(ctx["patch"], ctx), "--video", str(ctx["tmp"] / "none.mp4")), [str(ctx["tmp"] / "none.mp4")]), 1),
    "infer: a text file as the video": (lambda ctx: ((ctx["tmp"] / "v.mp4").write_text("x") and replaced(infer_args(ctx["patch"], ctx), "--video", str(ctx["tmp"] / "v.mp4")), [str(ctx["tmp"] / "v.mp4")]), 1),
    "infer: --max-new-tokens 0": (lambda ctx: ([*infer_args(ctx["patch"], ctx), "--max-new-tokens", "0"], ["--max-new-tokens: must be at least 1, got 0"]), 2),
    "infer: a --batch file that is not UTF-8": (lambda ctx: ((ctx["tmp"] / "q.jsonl").write_bytes(b"\xff\n") and ["infer", "--patch", str(ctx["patch"]), "--batch", str(ctx["tmp"] / "q.jsonl")], ["q.jsonl: not UTF-8 text"]), 1),
    "flops: a base that does not exist": (lambda ctx: (["flops", "--base", str(ctx["tmp"] / "none"), "--method", "ft"], [str(ctx["tmp"] / "none")]), 1),
    "quickstart: a tiny base of no family": (lambda ctx: (["quickstart", "--base", "tiny-llava-next", "--out", str(ctx["tmp"] / "q")], ["unknown base family 'llava-next'; registered: llava-onevision, qwen2.5-vl, video-llava"]), 1),
    "train: a newline position the base family has not": (lambda ctx: (train_args(ctx["family"]("video-llava"), ctx["bench"], ctx["tmp"] / "run", None, "model.newline_position=grid"), ["model.newline_position: video-llava bases take newline positions ('no_token',), got 'grid'"]), 1),
    "subset: files with no video over a minute": (short_videos_only, 1),
}


# --- patches and stores, beyond the hand-written cases above ----------------------------------


def patch_with(change, fragments):
    def build(ctx):
        patch = ctx["tmp"] / "patch"
        shutil.copytree(ctx["patch"], patch)
        change(patch)
        return infer_args(patch, ctx), [f.format(patch=patch) for f in fragments]

    return build


def store_with(change, fragments):
    def build(ctx):
        store = ctx["tmp"] / "store"
        shutil.copytree(ctx["bench"]["audio"], store)
        change(store)
        return train_args(ctx["base"], ctx["bench"], ctx["tmp"] / "run", store), [f.format(store=store) for f in fragments]

    return build


def first_item(store):
    return sorted((store / "items").glob("*.safetensors"))[0]


STATE_CASES = {
    "patch: patch_config.json not UTF-8": (patch_with(lambda p: (p / "patch_config.json").write_bytes(b"\xff{}"), ["{patch}/patch_config.json: not UTF-8 text"]), 1),
    "patch: patch_config.json not JSON": (patch_with(lambda p: (p / "patch_config.json").write_text("{"), ["{patch}/patch_config.json"]), 1),
    "patch: an unknown kind": (patch_with(lambda p: (p / "patch_config.json").write_text(json.dumps({**json.loads((p / "patch_config.json").read_text()), "kind": "mystery"})), ["{patch}/patch_config.json", "mystery"]), 1),
    "patch: an unknown config field": (patch_with(lambda p: (p / "patch_config.json").write_text(json.dumps({**(r := json.loads((p / "patch_config.json").read_text())), "config": {**r["config"], "num_heads_typo": 4}})), ["{patch}/patch_config.json", "num_heads_typo"]), 1),
    "patch: an empty folder": (patch_with(lambda p: [f.unlink() for f in p.iterdir()], ["{patch}"]), 1),
    "patch: weights of another shape": (patch_with(lambda p: save_file({"q": torch.zeros(2)}, p / "patch.safetensors"), ["{patch}"]), 1),
    "store: index.json not JSON": (store_with(lambda s: (s / "index.json").write_text("{"), ["{store}/index.json"]), 1),
    "store: index.json not UTF-8": (store_with(lambda s: (s / "index.json").write_bytes(b"\xff"), ["{store}/index.json: not UTF-8 text"]), 1),
    "store: a truncated item": (store_with(lambda s: first_item(s).write_bytes(first_item(s).read_bytes()[:100]), ["{store}/items/", "not a readable feature-store item"]), 1),
}


# name -> (build the command line and the message fragments, expected exit code)
CASES = {
    "NaN in one feature item": (nan_feature, 1),
    "empty feature tensor": (empty_feature, 1),
    "training diverges to NaN": (diverging_training, 1),
    "a step writes Inf weights (finite loss)": (inf_weights_with_a_finite_loss, 1),
    "an unknown data.task, checked before the base loads": (unknown_task_before_the_base_loads, 1),
    "patch weights with Inf": (nan_patch_weights, 1),
    "truncated patch.safetensors": (truncated_patch, 1),
    "--device cuda without a GPU": (cuda_without_gpu, 1),
    "patch weights without patch_config.json": (patch_without_config, 1),
    "LoRA weights without adapter_config.json": (lora_without_config, 1),
    "a local --base that does not exist": (missing_local_base, 1),
    "an empty --batch file": (empty_batch, 1),
    "--out that is an existing file": (out_is_a_file, 1),
    "--batch-size 0": (batch_size_zero, 2),
    "--frames -3": (negative_frames, 2),
    "num_heads: \"4\" in patch_config.json": (wrong_type_in_patch_config, 1),
    "a --features folder that does not exist": (missing_feature_store, 1),
    "a foreign index.json in a store": (foreign_store_index, 1),
    "a malformed adapter_config.json": (malformed_adapter_config, 1),
    **ANNOTATION_CASES,
    **PREDICTION_CASES,
    **RECIPE_CASES,
    **MEDIA_CASES,
    **MISUSE_CASES,
    **STATE_CASES,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case, tiny_model_dir, tiny_base, synthetic_bench, patch_dir, tmp_path, caplog, capsys):
    build, code = CASES[case]
    context = {"base": tiny_model_dir, "family": tiny_base, "bench": synthetic_bench, "patch": patch_dir, "tmp": tmp_path}
    args, fragments = build(context)
    message = ""
    try:
        returned = main(args)
    except SystemExit as exc:  # usage errors: argparse's exit 2 (message on stderr), or the message itself
        returned, message = (exc.code, "") if isinstance(exc.code, int) else (1, str(exc.code))
    assert returned == code
    said = caplog.text + capsys.readouterr().err + message
    assert "Traceback" not in said
    for fragment in fragments:
        assert fragment in said, (fragment, said[-2000:])
    if args[0] == "train":  # nothing broken shipped, nor checkpointed
        assert not (tmp_path / "run" / "patch.safetensors").exists()
        assert not list((tmp_path / "run-work").glob("checkpoint-*/patch.safetensors"))
