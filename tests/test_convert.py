"""``pave convert`` on a synthetic checkpoint in the exact layout of the authors' release: key
names and prefixes, shapes, ``torch.save`` pickles, peft's adapter with the authors' module names.
The converted patch must compute the released fusion rule, re-implemented here from its
description (values through the key projection, no RoPE, the chunk rule, time interpolation)."""

import json

import pytest
import torch
import torch.nn.functional as F

from pave.cli import main
from pave.convert import ConversionError, convert
from pave.models.patched import PatchedModel
from pave.patch import PatchConfig, PavePatch

PREFIX = "base_model.model.model.temporal_aggregator."
PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@pytest.fixture(scope="module")
def release(tiny_model_dir, tmp_path_factory):
    """An authors' training output folder for the tiny base: patch weights (random, output norm
    included) and a LoRA adapter on every LLM projection."""
    base = PatchedModel.from_base(str(tiny_model_dir))
    text, vision = base.config.text_config, base.config.vision_config
    config = PatchConfig(
        side_dim=1024, query_dim=vision.hidden_size, output_dim=text.hidden_size, hidden_dim=32, num_heads=4,
        ffn_dim=64, output_mlp_dim=48, rope="none", value_from_key=True,
    )
    torch.manual_seed(0)
    patch = PavePatch(config)
    with torch.no_grad():
        for p in patch.parameters():
            p.normal_(std=0.2)  # the output norm too: at init it is zero and would prove nothing
    folder = tmp_path_factory.mktemp("release") / "pave_tiny_audio"
    folder.mkdir()
    torch.save({PREFIX + k: v.clone() for k, v in patch.state_dict().items()}, folder / "non_lora_trainables.bin")
    lora, targets = {}, []
    for i, layer in enumerate(base.llava.model.language_model.layers):
        for name in PROJECTIONS:
            module = layer.get_submodule(name)
            key = f"base_model.model.model.layers.{i}.{name}"
            lora[f"{key}.lora_A.weight"] = torch.randn(4, module.in_features) * 0.1
            lora[f"{key}.lora_B.weight"] = torch.randn(module.out_features, 4) * 0.1
            targets.append(f"model.layers.{i}.{name}")
    torch.save(lora, folder / "adapter_model.bin")
    adapter = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.05, "target_modules": targets,
               "base_model_name_or_path": "lmms-lab/llava-onevision-qwen2-0.5b-ov", "task_type": "CAUSAL_LM"}
    (folder / "adapter_config.json").write_text(json.dumps(adapter))
    (folder / "config.json").write_text(json.dumps({"mm_newline_position": "grid", "mm_spatial_pool_stride": 2}))
    return {"folder": folder, "weights": patch.state_dict(), "lora": lora, "config": config}


def released_fusion(w, visual_queries, side, lengths, frames, heads):
    """The released patch for one sample, written from its description: (T, N_q, C_v)."""
    memory = side @ w["input_mapping.weight"].T + w["input_mapping.bias"]  # (T_s, N_s, d)
    memory = memory[:lengths]
    if lengths < frames:  # time-only trilinear interpolation, corners aligned, after the input map
        grid = memory.permute(2, 0, 1)[None, :, :, :, None]  # (1, d, T_s, N_s, 1)
        memory = F.interpolate(grid, size=(frames, memory.shape[1], 1), mode="trilinear", align_corners=True)
        memory = memory[0, :, :, :, 0].permute(1, 2, 0)
    count = memory.shape[0]
    sizes = [count // frames + (1 if i < count % frames else 0) for i in range(frames)]
    starts = [sum(sizes[:i]) for i in range(frames)]
    h = visual_queries @ w["query_input_mapping.weight"].T + w["query_input_mapping.bias"]  # (T, N_q, d)
    d = h.shape[-1]
    layers = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("cross_attn_layers."))
    for layer in range(layers):
        p = {k.split(f"cross_attn_layers.{layer}.", 1)[1]: v for k, v in w.items() if k.startswith(f"cross_attn_layers.{layer}.")}
        out = torch.empty_like(h)
        for i in range(frames):
            keys = memory[starts[i] : starts[i] + sizes[i]].reshape(-1, d)
            q = (h[i] @ p["attn.q_linear.weight"].T + p["attn.q_linear.bias"]).view(-1, heads, d // heads)
            k = (keys @ p["attn.k_linear.weight"].T + p["attn.k_linear.bias"]).view(-1, heads, d // heads)
            v = k  # the released value is the key projection's output
            scores = torch.einsum("qhc,khc->hqk", q, k) / (d // heads) ** 0.5
            out[i] = torch.einsum("hqk,khc->qhc", scores.softmax(-1), v).reshape(-1, d)
        h = h + out
        normed = F.layer_norm(h, (d,), p["ffn.0.weight"], p["ffn.0.bias"], 1e-5)
        h = h + F.gelu(normed @ p["ffn.1.weight"].T) @ p["ffn.3.weight"].T
    hidden = F.gelu(h @ w["output_mapping.0.weight"].T + w["output_mapping.0.bias"])
    mapped = hidden @ w["output_mapping.2.weight"].T + w["output_mapping.2.bias"]
    return F.layer_norm(mapped, (mapped.shape[-1],), w["output_norm.weight"], w["output_norm.bias"], 1e-5)


def test_a_converted_patch_computes_the_released_fusion(release, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "converted"
    assert main(["convert", str(release["folder"]), "--side-channel", "audio", "--out", str(out), "--base", str(tiny_model_dir)]) == 0
    assert "LoRA on 2 LLM layers" in capsys.readouterr().out
    model = PatchedModel.from_pretrained(out)
    record = json.loads((out / "patch_config.json").read_text())
    assert record["newline_position"] == "grid" and model.newline_position == "grid"
    assert set(record["converted_from"]["files"]) == {"non_lora_trainables.bin", "adapter_model.bin", "adapter_config.json", "config.json"}
    patch = model.patches["audio"]
    assert (patch.config.value_from_key, patch.config.rope, patch.config.side_encoder) == (True, "none", "imagebind-huge")

    torch.manual_seed(1)
    frames, (rows, cols) = 4, model.token_layout().grid
    visual = torch.randn(2, frames, rows, cols, patch.config.output_dim)
    queries = torch.randn(2, frames, rows, cols, patch.config.query_dim)
    lengths = [3, 10]  # fewer side frames than key frames (interpolated), and more (chunked)
    side = torch.randn(2, max(lengths), 1, 1, 1024)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    weights = {k: v.double() for k, v in release["weights"].items()}
    with torch.no_grad():  # in float64, so the comparison sees the math, not float32 rounding
        delta = patch.double()(visual.double(), side.double(), query_features=queries.double(), side_mask=mask).delta
        for b in range(2):
            expected = released_fusion(weights, queries[b].flatten(1, 2).double(), side[b].flatten(1, 2).double(), lengths[b], frames, 4)
            got = delta[b].flatten(1, 2)
            assert (got - expected).abs().max() / expected.abs().max() < 1e-5


def test_the_converted_lora_loads_in_peft_on_the_same_modules(release, tiny_model_dir, tmp_path):
    out = convert(release["folder"], tmp_path / "converted", "audio", base=str(tiny_model_dir)).directory
    model = PatchedModel.from_pretrained(out)
    adapted = {name for name, module in model.base.named_modules() if hasattr(module, "lora_A") and "language_model.layers." in name}
    expected = {f"base_model.model.model.language_model.layers.{i}.{p}" for i in range(2) for p in PROJECTIONS}
    assert adapted == expected
    everything = {name for name, module in model.base.named_modules() if hasattr(module, "lora_A") and len(module.lora_A)}
    assert everything == expected  # nothing on the vision tower or the projector
    for key, value in release["lora"].items():
        module = model.base.get_submodule(key.replace("base_model.model.model.layers.", "base_model.model.model.language_model.layers.").rsplit(".lora_", 1)[0])
        half = module.lora_A if ".lora_A." in key else module.lora_B
        assert torch.equal(half["default"].weight, value), key


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda f: torch.save({**torch.load(f / "non_lora_trainables.bin"), "model.mm_projector.0.weight": torch.zeros(1)}, f / "non_lora_trainables.bin"),
         "key 'model.mm_projector.0.weight' is not a patch weight"),
        (lambda f: torch.save({**torch.load(f / "non_lora_trainables.bin"), PREFIX + "extra_gate.weight": torch.zeros(1)}, f / "non_lora_trainables.bin"),
         "unknown patch weight temporal_aggregator.extra_gate.weight"),
        (lambda f: torch.save({**torch.load(f / "adapter_model.bin"), "base_model.model.model.vision_tower.q_proj.lora_A.weight": torch.zeros(1)}, f / "adapter_model.bin"),
         "LoRA key 'base_model.model.model.vision_tower.q_proj.lora_A.weight' is not on the LLM"),
        (lambda f: (f / "non_lora_trainables.bin").unlink(), "no non_lora_trainables.bin"),
        (lambda f: (f / "non_lora_trainables.bin").write_bytes(b"not a pickle"), "not a weights-only torch file"),
        (lambda f: (f / "adapter_config.json").unlink(), "needs both adapter_config.json and adapter_model"),
    ],
)
def test_what_the_converter_does_not_recognise_is_refused_by_name(release, tiny_model_dir, tmp_path, spoil, message):
    import shutil

    folder = tmp_path / "release"
    shutil.copytree(release["folder"], folder)
    spoil(folder)
    with pytest.raises(ConversionError, match=message.replace("(", r"\(").replace(".", r"\.")):
        convert(folder, tmp_path / "out", "audio", base=str(tiny_model_dir))


def test_a_converted_patch_evaluates_on_imported_features(release, tiny_model_dir, synthetic_bench, tmp_path, caplog):
    """The released path end to end on the tiny base: convert, import their audio features
    (one (K, 1024) bfloat16 tensor per video, as ImageBind gave them), eval and infer."""
    patch = tmp_path / "converted"
    assert main(["convert", str(release["folder"]), "--side-channel", "audio", "--out", str(patch), "--base", str(tiny_model_dir)]) == 0
    features = tmp_path / "MUSIC-AVQA-videos-Synthetic_audio_imagebind_feat"
    features.mkdir()
    clips = sorted((synthetic_bench["root"] / "MUSIC-AVQA-videos-Synthetic").glob("*.mp4"))
    for number, clip in enumerate(clips):
        torch.save(torch.randn(3 + number % 3, 1024).to(torch.bfloat16), features / f"{clip.stem}.pt")
    store = tmp_path / "store"
    assert main(["extract", "audio", "--backend", "released", "--inputs", str(features), "--out", str(store)]) == 0
    out = tmp_path / "eval"
    args = [
        "eval", "--task", "music_avqa", "--annotations", str(synthetic_bench["test"]), "--media-root", str(synthetic_bench["root"]),
        "--patch", str(patch), "--features", f"audio={store}", "--out", str(out), "--frames", "2", "--max-new-tokens", "2",
    ]
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["counts"]["scored"] == report["counts"]["samples"] > 0 and not report["skipped"]
    assert "trained on imagebind-huge features" not in caplog.text  # the store's encoder is the patch's
    infer = ["infer", "--patch", str(patch), "--video", str(clips[0]), "--question", "q", "--side", str(store),
             "--side-id", clips[0].stem, "--json", "--frames", "2", "--max-new-tokens", "2"]
    assert main(infer) == 0


def test_training_goes_on_from_a_converted_patch_on_its_layout(release, tiny_model_dir, synthetic_bench, tmp_path):
    from pave import recipes

    patch = convert(release["folder"], tmp_path / "converted", "audio", base=str(tiny_model_dir)).directory
    features = tmp_path / "feat"
    features.mkdir()
    for clip in (synthetic_bench["root"] / "MUSIC-AVQA-videos-Synthetic").glob("*.mp4"):
        torch.save(torch.randn(4, 1024), features / f"{clip.stem}.pt")
    assert main(["extract", "audio", "--backend", "released", "--inputs", str(features), "--out", str(tmp_path / "store")]) == 0
    base = [
        "train", str(recipes.find("tiny_audio")), f"model.base={tiny_model_dir}", f"data.annotations=[{synthetic_bench['train']}]",
        f"data.media_root={synthetic_bench['root']}", f"data.features={{audio: {tmp_path / 'store'}}}", f"patch.init_from={patch}",
        "train.max_steps=2", "train.save_steps=100", "lora.r=4",
    ]
    assert main([*base, f"train.output_dir={tmp_path / 'wrong'}"]) == 1  # one_token is not what it was trained on
    assert main([*base, "model.newline_position=grid", f"train.output_dir={tmp_path / 'run'}"]) == 0
    trained = PatchedModel.from_pretrained(tmp_path / "run")
    assert trained.newline_position == "grid" and trained.patches["audio"].config.value_from_key
    before = PatchedModel.from_pretrained(patch).patches["audio"].state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in trained.patches["audio"].state_dict().items())
