"""Bad input through the command line: a one-line message naming the file or field, the right
exit code, no traceback, nothing broken written. One row of CASES per case."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pave import recipes
from pave.cli import main
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
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case, tiny_model_dir, synthetic_bench, patch_dir, tmp_path, caplog, capsys):
    build, code = CASES[case]
    args, fragments = build({"base": tiny_model_dir, "bench": synthetic_bench, "patch": patch_dir, "tmp": tmp_path})
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
