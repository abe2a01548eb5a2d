"""One training step at the full LLaVA-OneVision 0.5B architecture: patch + LoRA vs LoRA alone.

The base is built from the bundled real config (SigLIP-so400m + Qwen2-0.5B, 152,000-token
vocabulary) with random weights, so no download is needed; only the widths and depths matter for
speed and memory. Visual tokens come precomputed, as training with the visual-token cache uses
them (the frozen vision tower is outside the step). LoRA is the paper's (r=64, alpha=16, every
LLM projection); the patch is the paper's audio patch (``PatchConfig`` defaults, 1024-d
ImageBind-like tokens, one per second).

Runs alternate between the two variants in one process (LoRA alone = the same model with its
patch switched off), so a busy machine slows both alike; the ratio is of the medians. Peak
memory is measured in a fresh subprocess per variant, during its first step: the growth of peak
RSS (CPU, ``VmHWM``) or of CUDA's peak allocation (GPU) above what the model and the inputs
already hold, i.e. activations, gradients and the optimizer's state.

Usage: ``python benchmarks/bench_base_step.py [--frames 4] [--repeats 3] [--device cpu] [--json OUT]``
(defaults: 4 frames on the CPU, 32 on a GPU, bfloat16 on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
from bench_patch import _reset_peak_rss, _status_kib  # this folder's /proc readers

from pave.configs import bundled_config
from pave.models.devices import resolve_device, resolve_dtype
from pave.models.families.llava_onevision import query_dim, visual_grid
from pave.models.patched import PatchedModel
from pave.tokens import SideInputs, VisualTokens

PROMPT_TOKENS = 40  # system message, question and the chat template's markup
ANSWER_TOKENS = 8
SIDE_TOKENS_PER_FRAME = 4  # audio: 1 token a second, key frames about 4 s apart on a 2-min video


def build(device: torch.device, dtype: torch.dtype) -> PatchedModel:
    from transformers import AutoConfig, LlavaOnevisionForConditionalGeneration

    config = AutoConfig.for_model(**bundled_config("llava-onevision-0.5b.json"))
    torch.manual_seed(0)
    with torch.device(device):
        base = LlavaOnevisionForConditionalGeneration(config).to(dtype)
    model = PatchedModel(base, base_name="llava-onevision-0.5b (random weights)")
    model.add_lora(r=64, alpha=16, dropout=0.0)
    model.add_patch("audio", model.patch_config(side_dim=1024, side_channel="audio"))
    with torch.no_grad():  # a trained patch: its output is not zero, so its backward is real work
        model.patches["audio"].output_norm.weight.normal_()
    return model.train()


def batch_for(model: PatchedModel, batch: int, frames: int, device, dtype) -> dict:
    config = model.config
    h, w = visual_grid(config)
    video = frames * h * w + 1
    length = PROMPT_TOKENS + video + ANSWER_TOKENS
    input_ids = torch.randint(0, 151000, (batch, length), device=device)
    input_ids[:, PROMPT_TOKENS : PROMPT_TOKENS + video] = config.video_token_id
    labels = torch.full_like(input_ids, -100)
    labels[:, -ANSWER_TOKENS:] = input_ids[:, -ANSWER_TOKENS:]
    side_frames = frames * SIDE_TOKENS_PER_FRAME
    return {
        "input_ids": input_ids,
        "labels": labels,
        "visual": VisualTokens(
            torch.randn(batch, frames, h, w, config.text_config.hidden_size, device=device, dtype=dtype),
            torch.randn(batch, frames, h, w, query_dim(config, "vision"), device=device, dtype=dtype),
        ),
        "side": {"audio": SideInputs(torch.randn(batch, side_frames, 1, 1, 1024, device=device))},
    }


def peak_start(device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    _reset_peak_rss()
    return _status_kib("VmRSS") * 1024


def peak_end(device, start: int) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - start
    return _status_kib("VmHWM") * 1024 - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--frames", type=int, default=None, help="key frames (default: 4 on CPU, 32 on GPU)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--memory-of", choices=("lora", "pave"), help=argparse.SUPPRESS)  # the subprocess
    args = parser.parse_args()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    frames = args.frames or (32 if device.type == "cuda" else 4)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    print(f"torch {torch.__version__}, {device}, {dtype}, {frames} frames, batch {args.batch}")
    start = time.perf_counter()
    model = build(device, dtype)
    inputs = batch_for(model, args.batch, frames, device, dtype)
    tokens = inputs["input_ids"].numel()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    print(f"built in {time.perf_counter() - start:.0f} s; {tokens} tokens per step")

    def step(patched: bool) -> tuple[float, int]:
        optimizer.zero_grad(set_to_none=True)
        base_mem = peak_start(device)
        begin = time.perf_counter()
        if patched:
            loss = model(**inputs).loss
        else:
            with model.disable_patches():
                loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - begin, peak_end(device, base_mem)

    if args.memory_of:
        print(json.dumps({"peak_bytes": step(args.memory_of == "pave")[1]}))
        return
    step(True), step(False)  # warm-up: kernels, optimizer state of both variants
    runs = {"lora": [], "pave": []}
    for _ in range(args.repeats):
        for variant in runs:
            runs[variant].append(step(variant == "pave")[0])
    result = {"device": str(device), "dtype": str(dtype), "frames": frames, "batch": args.batch, "tokens": tokens}
    for variant, seconds in runs.items():
        child = [sys.executable, __file__, "--memory-of", variant, "--frames", str(frames), "--batch", str(args.batch)]
        child += ["--dtype", args.dtype] + (["--device", args.device] if args.device else [])
        peak = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        median = statistics.median(seconds)
        result[variant] = {
            "step_s": median,
            "step_s_runs": seconds,
            "tokens_per_s": tokens / median,
            "peak_mib": peak["peak_bytes"] / 2**20,
        }
        print(
            f"{variant:>5}: {median:.2f} s/step (runs {min(seconds):.2f}-{max(seconds):.2f}), "
            f"{tokens / median:.0f} tokens/s, peak +{result[variant]['peak_mib']:.0f} MiB"
        )
    result["time_ratio"] = result["pave"]["step_s"] / result["lora"]["step_s"]
    result["memory_ratio"] = result["pave"]["peak_mib"] / result["lora"]["peak_mib"]
    print(f"patch + LoRA / LoRA alone: time {result['time_ratio']:.3f}x, peak memory {result['memory_ratio']:.3f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
