"""Side-by-side benchmark of the PAVE patch and the authors' released module (``PAVEModuleV5``).

Needs a checkout of the authors' release (``git clone https://github.com/dragonlzm/PAVE``; the
figures in docs/BENCHMARKS.md used snapshot ef6a93f) and ``einops``, which their module imports
(``pip install einops``). Their module is loaded from that checkout as it is; nothing of it is
copied here. ``ipdb``, which it imports but never calls, is replaced by an empty module when it
is not installed.

For each of the paper's four side-channel shapes (``bench_patch.SHAPES``) at the 7B width, with
the released architecture (2 layers of width 512, 4 heads, queries from 1152-d features, output
MLP and zero-initialised LayerNorm, dropout off), it measures forward+backward (gradients for
every parameter, none for the frozen inputs), in each of ``--dtypes`` (fp32 by default) on
``--device`` (the CPU by default, or a CUDA GPU), of these variants:

* ``release``: ``PAVEModuleV5`` as the released configs build it (linear input mapping, RoPE
  off), which loops over the samples of a batch;
* ``ours-released``: :class:`pave.patch.PavePatch` with the released math (values from the key
  projection, RoPE off), loaded with the release's weights; its output is checked against the
  release's (with a randomised output LayerNorm, fp32 on the CPU) before anything is timed;
* ``ours-rope-off``: our default architecture (own value projection) without RoPE;
* ``ours-default``: our default (RoPE on: temporal for audio, 3-axis otherwise);
* ``ours-recompute``: the default with ``PatchConfig.recompute`` (activation checkpointing).

Time (on the CPU with freed memory kept for reuse, see ``REUSE_MEMORY``): the variants of a shape
run alternated, one pass each per round, after one warm-up pass each, so a change in the
machine's load hits all of them alike; a ratio is the median over rounds of the per-round ratio.
FLOPs: one pass of each variant under ``FlopCounterMode``. Beside them, the rate of a plain
matmul the size of the output MLP's widest product, which both modules do alike: a pass of
``ours-released`` made only of such products, with everything else free, would take its FLOPs
over that rate: the "time floor", an estimate of the lowest ratio to the release this math allows. Memory: the peak
growth during a second pass, in a fresh process per variant (see :func:`memory_case`). Batch
scaling: ``ours-default`` forward and forward+backward at batch 1 and 8, alternated the same
way. The load average is printed before and after, and the share of the cores the process got
during the timed rounds.

Usage: ``python benchmarks/bench_release.py --release PATH [--rounds 3] [--parts time memory scaling]
[--device cpu|cuda] [--dtypes float32 bfloat16] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from dataclasses import asdict
from pathlib import Path

from bench_patch import (
    KEY_FRAMES,
    QUERY_DIM,
    QUERY_GRID,
    SHAPES,
    Shape,
    _flop_counter,
    _reset_peak_rss,
    _status_kib,
    machine,
    mm_gflops,
    synchronize,
)

PARTS = ("time", "memory", "scaling")
DTYPES = ("float32", "bfloat16", "float16")
VARIANTS = ("release", "ours-released", "ours-rope-off", "ours-default", "ours-recompute")
#: (numerator, denominator, goal): the ratios the benchmark reports, with the goal each should meet.
TIME_RATIOS = (("ours-released", "release", 0.8), ("ours-default", "ours-rope-off", 1.05))
MEMORY_RATIOS = (("ours-released", "release", None), ("ours-recompute", "release", 0.6))


def load_release(repo: Path):
    """``PAVEModuleV5`` from a checkout of the authors' release, imported without their model package
    (whose ``__init__`` loads every language model they ship)."""
    folder = repo / "libs" / "model" / "multimodal_encoder"
    if not (folder / "info_aggregator.py").is_file():
        raise SystemExit(f"--release {repo}: no libs/model/multimodal_encoder/info_aggregator.py there")
    try:
        import einops  # noqa: F401
    except ImportError:
        raise SystemExit("the authors' module imports einops: pip install einops") from None
    if importlib.util.find_spec("ipdb") is None:
        sys.modules["ipdb"] = types.ModuleType("ipdb")
    sys.path.insert(0, str(repo))  # their blocks.py imports libs.mm_utils
    package = types.ModuleType("pave_release")
    package.__path__ = [str(folder)]
    sys.modules["pave_release"] = package
    module = importlib.import_module("pave_release.info_aggregator")
    # With flash_attn installed their training path switches to its varlen kernel, which needs fp16
    # or bf16 and index tensors they build on the CPU: keep both modules on PyTorch's SDPA.
    importlib.import_module("pave_release.blocks").flash_attn_varlen_func = None
    return module.PAVEModuleV5


def build(variant: str, shape: Shape, output_dim: int, release_cls):
    """The module of one variant, in training mode (its dropout is off)."""
    from pave.patch import PatchConfig, PavePatch

    if variant == "release":
        return release_cls(
            input_dim=shape.side_dim,
            output_dim=output_dim,
            embed_dim=512,
            fast_input_mapping_type="linear",
            query_type="slow_feat",
            chunks_number=KEY_FRAMES,
            number_of_query=QUERY_GRID[0] * QUERY_GRID[1],
            query_input_dim=QUERY_DIM,
            num_cross_attn_layer=2,
            use_3d_rope=False,
            use_dropout=False,
            use_output_norm=True,
        )
    settings = {
        "ours-released": {"value_from_key": True, "rope": "none"},
        "ours-rope-off": {"rope": "none"},
        "ours-default": {"rope": shape.rope},
        "ours-recompute": {"rope": shape.rope, "recompute": True},
    }[variant]
    return PavePatch(PatchConfig(side_dim=shape.side_dim, output_dim=output_dim, **settings))


def make_inputs(
    shape: Shape, batch: int, output_dim: int, device: str = "cpu", dtype: str = "float32"
) -> dict:
    """The frozen inputs of one pass, and the gradient its output receives (``"grad"``)."""
    import torch

    shapes = {
        "visual": (batch, KEY_FRAMES, *QUERY_GRID, output_dim),
        "query": (batch, KEY_FRAMES, *QUERY_GRID, QUERY_DIM),
        "side": (batch, shape.side_frames, *shape.side_grid, shape.side_dim),
        "grad": (batch, KEY_FRAMES * QUERY_GRID[0] * QUERY_GRID[1], output_dim),
    }
    # Drawn in fp32 on the CPU, so every device and dtype sees the same numbers.
    return {name: torch.randn(size).to(device, getattr(torch, dtype)) for name, size in shapes.items()}


def forward(variant: str, module, inputs: dict):
    """(B, T * h * w, C_v) output of either module."""
    import torch

    side = inputs["side"]
    if variant == "release":
        lengths = torch.full((side.shape[0],), side.shape[1])
        return module(side, lengths, chunk_num=KEY_FRAMES, slow_feats=inputs["query"].flatten(2, 3))
    return module(inputs["visual"], side, query_features=inputs["query"]).delta.flatten(1, 3)


def check_equal(shape: Shape, output_dim: int, release_cls) -> float:
    """Max relative difference between the release and ``ours-released`` on the same weights."""
    import torch

    torch.manual_seed(0)
    release = build("release", shape, output_dim, release_cls)
    torch.nn.init.normal_(release.output_norm.weight)
    torch.nn.init.normal_(release.output_norm.bias)
    ours = build("ours-released", shape, output_dim, release_cls)
    ours.load_state_dict(release.state_dict(), strict=True)
    inputs = make_inputs(shape, 2, output_dim)
    with torch.no_grad():
        theirs, mine = forward("release", release, inputs), forward("ours-released", ours, inputs)
    return float(((mine - theirs).abs().max() / theirs.abs().max()).item())


def one_pass(variant: str, module, inputs: dict, backward: bool) -> None:
    import torch

    if not backward:
        with torch.inference_mode():
            forward(variant, module, inputs)
        return
    forward(variant, module, inputs).backward(inputs["grad"])
    module.zero_grad(set_to_none=True)


def count_flops(variant: str, module, inputs: dict) -> float:
    """FLOPs of one forward+backward pass (2 per multiply-add)."""
    with _flop_counter() as counter:
        one_pass(variant, module, inputs, True)
    return float(counter.get_total_flops())


def alternated(cases: list[tuple[str, object, dict, bool]], rounds: int, device: str) -> dict[str, dict]:
    """Warm up every case, then time ``rounds`` rounds of one pass of each case in turn.

    A case is (name, module, inputs, backward); a name other than ``release`` runs as ours.
    """
    for name, module, inputs, backward in cases:
        one_pass(name, module, inputs, backward)
    times: dict[str, list[float]] = {case[0]: [] for case in cases}
    busy: dict[str, list[float]] = {case[0]: [] for case in cases}
    for _ in range(rounds):
        for name, module, inputs, backward in cases:
            synchronize(device)
            start, cpu = time.perf_counter(), time.process_time()
            one_pass(name, module, inputs, backward)
            synchronize(device)
            times[name].append(time.perf_counter() - start)
            busy[name].append((time.process_time() - cpu) / times[name][-1])
    return {
        name: {
            "times_s": t,
            "median_s": statistics.median(t),
            # Host threads kept busy: the share of the cores a CPU run got; meaningless on a GPU.
            "cores_busy": statistics.median(busy[name]) if device == "cpu" else None,
        }
        for name, t in times.items()
    }


def _setup(spec: dict):
    """Threads, the release's class (when a variant needs it) and the shape of a worker's spec."""
    import torch

    torch.set_num_threads(spec["threads"])
    needs_release = "release" in spec.get("variants", [spec.get("variant")])
    release_cls = load_release(Path(spec["release"])) if needs_release else None
    torch.manual_seed(0)
    return release_cls, _shape(spec["shape"])


def _module(variant: str, shape: Shape, spec: dict, release_cls):
    import torch

    module = build(variant, shape, spec["output_dim"], release_cls)
    return module.to(spec["device"], getattr(torch, spec["dtype"])).train()


def _inputs(shape: Shape, batch: int, spec: dict) -> dict:
    return make_inputs(shape, batch, spec["output_dim"], spec["device"], spec["dtype"])


def time_shape(spec: dict) -> dict:
    """Worker: FLOPs, then the alternated fwd+bwd rounds of every variant of one shape, then the
    rate of the widest matmul on the same device."""
    from pave.patch import PatchConfig

    release_cls, shape = _setup(spec)
    inputs = _inputs(shape, spec["batch"], spec)
    cases = [(v, _module(v, shape, spec, release_cls), inputs, True) for v in spec["variants"]]
    flops = {name: count_flops(name, module, inputs) for name, module, _, _ in cases}
    result = alternated(cases, spec["rounds"], spec["device"])
    for name, row in result.items():
        row["gflop"] = flops[name] / 1e9
    rows = inputs["grad"].shape[0] * inputs["grad"].shape[1]
    # The output MLP's widest product, which both modules do alike: the rate a pass made of
    # nothing but such products would reach.
    mm = mm_gflops(
        rows, spec["dtype"], PatchConfig.output_mlp_dim, spec["output_dim"], spec["device"], repeats=5
    )
    return {"variants": result, "matmul_gflops": mm}


def scale_shape(spec: dict) -> dict:
    """Worker: ``ours-default`` forward and forward+backward at batch 1 and 8, alternated."""
    _, shape = _setup(spec)
    module = _module("ours-default", shape, spec, None)
    cases = []
    for batch in (1, 8):
        inputs = _inputs(shape, batch, spec)
        cases += [(f"B={batch} fwd", module, inputs, False), (f"B={batch} fwd+bwd", module, inputs, True)]
    return alternated(cases, spec["rounds"], spec["device"])


def memory_case(spec: dict) -> dict:
    """Worker: peak memory growth (MiB) of one forward+backward of one variant.

    On the CPU, the growth of the peak resident set: a first pass loads the kernels' code and sets
    up the thread pool; freed heap memory is then handed back to the system, so the second pass's
    growth is its own working set (activations, tensors saved for backward, gradients, workspaces).
    On a GPU, the peak of the caching allocator's allocated bytes above what the second pass starts
    with.
    """
    import ctypes

    import torch

    release_cls, shape = _setup(spec)
    variant, device = spec["variant"], spec["device"]
    module = _module(variant, shape, spec, release_cls)
    inputs = _inputs(shape, spec["batch"], spec)
    one_pass(variant, module, inputs, True)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        one_pass(variant, module, inputs, True)
        torch.cuda.synchronize()
        return {"peak_growth_mib": (torch.cuda.max_memory_allocated() - base) / 2**20}
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    _reset_peak_rss()
    base = _status_kib("VmRSS")
    one_pass(variant, module, inputs, True)
    return {"peak_growth_mib": (_status_kib("VmHWM") - base) / 1024}


def _shape(data: dict) -> Shape:
    return Shape(**{**data, "side_grid": tuple(data["side_grid"])})


WORKERS = {"time": time_shape, "scale": scale_shape, "memory": memory_case}
#: glibc settings that keep freed memory in the process for reuse. By default glibc returns every
#: block over 32 MiB to the system at once, so each new activation of that size is page-faulted
#: and zeroed again by the kernel: a cost that grows faster than the batch (LayerNorm, GELU and
#: copies take 15x longer at batch 8 than at batch 1). A caching allocator (jemalloc, tcmalloc,
#: or CUDA's) avoids it the same way.
REUSE_MEMORY = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 40),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def spawn(kind: str, spec: dict, reuse_memory: bool = False) -> dict:
    """Run one worker in a fresh interpreter (its peak memory and allocator state are its own)."""
    env = {**os.environ, **(REUSE_MEMORY if reuse_memory else {})}
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", kind, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker {spec} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios a_i / b_i."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=Path, help="checkout of the authors' release (dragonlzm/PAVE)")
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    parser.add_argument("--batch", type=int, default=4, help="batch of the side-by-side runs (default: 4)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up (default: 3)")
    parser.add_argument(
        "--output-dim", type=int, default=3584, help="LLM width: 3584 for 7B (default), 896 for 0.5B"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: nproc)")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default: cpu)"
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=DTYPES,
        default=["float32"],
        help="parameter and input dtypes, each measured in turn (default: float32)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="what to measure: side-by-side times, peak memory, batch 1 vs 8 scaling (default: all)",
    )
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="time with glibc's default allocator settings instead of REUSE_MEMORY (memory is always "
        "measured with the defaults)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write every measurement to this JSON file")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.worker and args.release is None:
        parser.error("--release PATH (a checkout of the authors' release) is required")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        kind, spec = args.worker
        print(json.dumps(WORKERS[kind](json.loads(spec))))
        return
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    release = str(args.release.resolve())
    release_cls = load_release(args.release)
    info = machine()
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    print(
        f"nproc {info['nproc']}, {info.get('gpu', info['cpu'])}, torch {info['torch']}, {args.threads} threads, "
        f"{' and '.join(args.dtypes)}, output_dim {args.output_dim}, batch {args.batch}, "
        f"load average {info['loadavg']:.2f}",
        file=sys.stderr,
    )
    common = {
        "output_dim": args.output_dim,
        "threads": args.threads,
        "release": release,
        "device": args.device,
    }
    reuse = not args.system_malloc
    results: dict[str, dict] = {dtype: {} for dtype in args.dtypes}
    for name in args.shapes:
        shape = SHAPES[name]
        # The math is compared once, in fp32 on the CPU, where equal means equal to rounding.
        max_rel_diff = check_equal(shape, args.output_dim, release_cls)
        if max_rel_diff > 1e-5:
            raise SystemExit(f"{name}: ours-released differs from the release by {max_rel_diff:.1e}")
        for dtype in args.dtypes:
            spec = {**common, "shape": asdict(shape), "batch": args.batch, "dtype": dtype}
            row = {"max_rel_diff": max_rel_diff}
            if "time" in args.parts:
                row["time"] = spawn("time", {**spec, "variants": VARIANTS, "rounds": args.rounds}, reuse)
            if "memory" in args.parts:
                row["memory"] = {
                    v: spawn("memory", {**spec, "variant": v})["peak_growth_mib"] for v in VARIANTS
                }
            if "scaling" in args.parts:
                row["scaling"] = spawn("scale", {**spec, "rounds": args.rounds}, reuse)
            results[dtype][name] = row
            print(
                f"  {name:<12} {dtype:<9} max rel diff {max_rel_diff:.1e}  measured {', '.join(args.parts)}",
                file=sys.stderr,
            )
    info["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": info, "args": {**vars(args), "release": release}, "dtypes": results}, f, indent=2
            )
    print("\n\n".join(report(rows, dtype, args, info) for dtype, rows in results.items()))


def report(results: dict, dtype: str, args: argparse.Namespace, info: dict) -> str:
    """Markdown tables for one dtype: times, FLOPs and rates, memory, ratios against their goals,
    batch scaling."""
    on_cpu = args.device == "cpu"
    lines = [
        f"**{dtype} on {info.get('gpu', 'the CPU')}.** Load average {info['loadavg']:.2f} before, "
        f"{info['loadavg_end']:.2f} after; batch {args.batch}, {args.rounds} alternated rounds, output width "
        f"{args.output_dim}"
        + (
            f", timed with {'glibc defaults' if args.system_malloc else 'freed memory kept for reuse'}."
            if on_cpu
            else "."
        ),
    ]
    timed = {name: row for name, row in results.items() if "time" in row}
    measured = {name: row for name, row in results.items() if "memory" in row}
    if timed:
        lines += [
            "",
            "| shape | max rel diff | "
            + " | ".join(f"{v} s" for v in VARIANTS)
            + (" | cores busy |" if on_cpu else " |"),
            "|---|--:|" + "--:|" * (len(VARIANTS) + on_cpu),
        ]
        for name, row in timed.items():
            t = row["time"]["variants"]
            busy = statistics.median(t[v]["cores_busy"] for v in VARIANTS) if on_cpu else None
            lines.append(
                f"| {name} | {row['max_rel_diff']:.1e} | "
                + " | ".join(f"{t[v]['median_s']:.2f}" for v in VARIANTS)
                + (f" | {busy:.1f} |" if on_cpu else " |")
            )
        lines += [
            "",
            "| shape | release GFLOP | ours-released GFLOP | FLOPs ours-released / release | release GFLOP/s | "
            "ours-released GFLOP/s | widest matmul GFLOP/s | time floor ours-released / release |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for name, row in timed.items():
            t = row["time"]["variants"]
            rel, ours, mm = t["release"], t["ours-released"], row["time"]["matmul_gflops"]
            lines.append(
                f"| {name} | {rel['gflop']:,.0f} | {ours['gflop']:,.0f} | {ours['gflop'] / rel['gflop']:.3f} | "
                f"{rel['gflop'] / rel['median_s']:,.0f} | {ours['gflop'] / ours['median_s']:,.0f} | "
                f"{mm:,.0f} | {ours['gflop'] / mm / rel['median_s']:.2f} |"
            )
    if measured:
        lines += [
            "",
            "| shape | " + " | ".join(f"{v} MiB" for v in VARIANTS) + " |",
            "|---|" + "--:|" * len(VARIANTS),
        ]
        for name, row in measured.items():
            lines.append(f"| {name} | " + " | ".join(f"{row['memory'][v]:,.0f}" for v in VARIANTS) + " |")
    both = {name: row for name, row in timed.items() if name in measured}
    if both:
        header = [f"time {a} / {b} (goal ≤ {g})" for a, b, g in TIME_RATIOS]
        header += [f"memory {a} / {b}" + (f" (goal ≤ {g})" if g else "") for a, b, g in MEMORY_RATIOS]
        header += ["time ours-recompute / ours-default"]
        lines += ["", "| shape | " + " | ".join(header) + " |", "|---|" + "--:|" * len(header)]
        for name, row in both.items():
            t, m = row["time"]["variants"], row["memory"]
            cells = [ratio(t[a]["times_s"], t[b]["times_s"]) for a, b, _ in TIME_RATIOS]
            cells += [m[a] / m[b] for a, b, _ in MEMORY_RATIOS]
            cells.append(ratio(t["ours-recompute"]["times_s"], t["ours-default"]["times_s"]))
            lines.append(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    if any("scaling" in row for row in results.values()):
        lines += [
            "",
            "| shape | B=1 fwd s | B=8 fwd s | fwd B=8 / B=1 | B=1 fwd+bwd s | B=8 fwd+bwd s | fwd+bwd B=8 / B=1 |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for name, row in results.items():
            if "scaling" not in row:
                continue
            s = row["scaling"]
            cells = []
            for mode in ("fwd", "fwd+bwd"):
                one, eight = s[f"B=1 {mode}"], s[f"B=8 {mode}"]
                cells += [
                    f"{one['median_s']:.3f}",
                    f"{eight['median_s']:.3f}",
                    f"{ratio(eight['times_s'], one['times_s']):.2f}",
                ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
