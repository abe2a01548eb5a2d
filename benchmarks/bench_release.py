"""Side-by-side benchmark of the PAVE patch and the authors' released module (``PAVEModuleV5``).

Needs a checkout of the authors' release (``git clone https://github.com/dragonlzm/PAVE``; the
figures in docs/BENCHMARKS.md used snapshot ef6a93f) and ``einops``, which their module imports
(``pip install einops``). Their module is loaded from that checkout as it is; nothing of it is
copied here. ``ipdb``, which it imports but never calls, is replaced by an empty module when it
is not installed.

For each of the paper's four side-channel shapes (``bench_patch.SHAPES``) at the 7B width, with
the released architecture (2 layers of width 512, 4 heads, queries from 1152-d features, output
MLP and zero-initialised LayerNorm, dropout off), it measures forward+backward (gradients for
every parameter, none for the frozen inputs), fp32, of these variants:

* ``release``: ``PAVEModuleV5`` as the released configs build it (linear input mapping, RoPE
  off), which loops over the samples of a batch;
* ``ours-released``: :class:`pave.patch.PavePatch` with the released math (values from the key
  projection, RoPE off), loaded with the release's weights; its output is checked against the
  release's (with a randomised output LayerNorm) before anything is timed;
* ``ours-rope-off``: our default architecture (own value projection) without RoPE;
* ``ours-default``: our default (RoPE on: temporal for audio, 3-axis otherwise);
* ``ours-recompute``: the default with ``PatchConfig.recompute`` (activation checkpointing).

Time (with freed memory kept for reuse, see ``REUSE_MEMORY``): the variants of a shape run alternated, one pass each per round, after one warm-up pass
each, so a change in the machine's load hits all of them alike; a ratio is the median over rounds
of the per-round ratio. Memory: the growth of the peak resident set during a second pass, in a fresh
process per variant (see :func:`memory_case`). Batch scaling: ``ours-default`` forward
and forward+backward at batch 1 and 8, alternated the same way. The load average is printed
before and after, and the share of the cores the process got during the timed rounds.

Usage: ``python benchmarks/bench_release.py --release PATH [--rounds 3] [--parts time memory scaling] [--json OUT]``.
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
    _reset_peak_rss,
    _status_kib,
    machine,
)

PARTS = ("time", "memory", "scaling")
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
    return importlib.import_module("pave_release.info_aggregator").PAVEModuleV5


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


def make_inputs(shape: Shape, batch: int, output_dim: int) -> dict:
    import torch

    return {
        "visual": torch.randn(batch, KEY_FRAMES, *QUERY_GRID, output_dim),
        "query": torch.randn(batch, KEY_FRAMES, *QUERY_GRID, QUERY_DIM),
        "side": torch.randn(batch, shape.side_frames, *shape.side_grid, shape.side_dim),
    }


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


def one_pass(variant: str, module, inputs: dict, grad, backward: bool) -> None:
    import torch

    if not backward:
        with torch.inference_mode():
            forward(variant, module, inputs)
        return
    forward(variant, module, inputs).backward(grad)
    module.zero_grad(set_to_none=True)


def alternated(cases: list[tuple[str, object, dict, object, bool]], rounds: int) -> dict[str, dict]:
    """Warm up every case, then time ``rounds`` rounds of one pass of each case in turn."""
    for variant, module, inputs, grad, backward in cases:
        one_pass(variant, module, inputs, grad, backward)
    times: dict[str, list[float]] = {case[0]: [] for case in cases}
    busy: list[float] = []
    for _ in range(rounds):
        for variant, module, inputs, grad, backward in cases:
            start, cpu = time.perf_counter(), time.process_time()
            one_pass(variant, module, inputs, grad, backward)
            times[variant].append(time.perf_counter() - start)
            busy.append((time.process_time() - cpu) / times[variant][-1])
    return {
        name: {"times_s": t, "median_s": statistics.median(t), "cores_busy": statistics.median(busy)}
        for name, t in times.items()
    }


def time_shape(spec: dict) -> dict:
    """Worker: the alternated fwd+bwd rounds of every variant of one shape."""
    import torch

    torch.set_num_threads(spec["threads"])
    release_cls = load_release(Path(spec["release"]))
    shape = _shape(spec["shape"])
    torch.manual_seed(0)
    inputs = make_inputs(shape, spec["batch"], spec["output_dim"])
    grad = torch.randn(spec["batch"], KEY_FRAMES * QUERY_GRID[0] * QUERY_GRID[1], spec["output_dim"])
    cases = [
        (v, build(v, shape, spec["output_dim"], release_cls).train(), inputs, grad, True) for v in spec["variants"]
    ]
    return alternated(cases, spec["rounds"])


def scale_shape(spec: dict) -> dict:
    """Worker: ``ours-default`` forward and forward+backward at batch 1 and 8, alternated."""
    import torch

    torch.set_num_threads(spec["threads"])
    shape = _shape(spec["shape"])
    torch.manual_seed(0)
    module = build("ours-default", shape, spec["output_dim"], None).train()
    cases = []
    for batch in (1, 8):
        inputs = make_inputs(shape, batch, spec["output_dim"])
        grad = torch.randn(batch, KEY_FRAMES * QUERY_GRID[0] * QUERY_GRID[1], spec["output_dim"])
        cases += [
            (f"B={batch} fwd", module, inputs, None, False),
            (f"B={batch} fwd+bwd", module, inputs, grad, True),
        ]
    return alternated(cases, spec["rounds"])


def memory_case(spec: dict) -> dict:
    """Worker: peak resident growth (MiB) of one forward+backward of one variant.

    A first pass loads the kernels' code and sets up the thread pool; freed heap memory is then
    handed back to the system, so the second pass's growth is its own working set: activations,
    tensors saved for backward, gradients, workspaces.
    """
    import ctypes

    import torch

    torch.set_num_threads(spec["threads"])
    release_cls = load_release(Path(spec["release"])) if spec["variant"] == "release" else None
    shape = _shape(spec["shape"])
    torch.manual_seed(0)
    module = build(spec["variant"], shape, spec["output_dim"], release_cls).train()
    inputs = make_inputs(shape, spec["batch"], spec["output_dim"])
    grad = torch.randn(spec["batch"], KEY_FRAMES * QUERY_GRID[0] * QUERY_GRID[1], spec["output_dim"])
    one_pass(spec["variant"], module, inputs, grad, True)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    _reset_peak_rss()
    base = _status_kib("VmRSS")
    one_pass(spec["variant"], module, inputs, grad, True)
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
    parser.add_argument("--output-dim", type=int, default=3584, help="LLM width: 3584 for 7B (default), 896 for 0.5B")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: nproc)")
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
    release = str(args.release.resolve())
    release_cls = load_release(args.release)
    info = machine()
    print(
        f"nproc {info['nproc']}, {info['cpu']}, torch {info['torch']}, {args.threads} threads, fp32, "
        f"output_dim {args.output_dim}, batch {args.batch}, load average {info['loadavg']:.2f}",
        file=sys.stderr,
    )
    common = {"output_dim": args.output_dim, "threads": args.threads, "release": release}
    results = {}
    for name in args.shapes:
        shape = SHAPES[name]
        spec = {**common, "shape": asdict(shape), "batch": args.batch}
        row = {"max_rel_diff": check_equal(shape, args.output_dim, release_cls)}
        if row["max_rel_diff"] > 1e-5:
            raise SystemExit(f"{name}: ours-released differs from the release by {row['max_rel_diff']:.1e}")
        reuse = not args.system_malloc
        if "time" in args.parts:
            row["time"] = spawn("time", {**spec, "variants": VARIANTS, "rounds": args.rounds}, reuse)
        if "memory" in args.parts:
            row["memory"] = {v: spawn("memory", {**spec, "variant": v})["peak_growth_mib"] for v in VARIANTS}
        if "scaling" in args.parts:
            row["scaling"] = spawn("scale", {**spec, "rounds": args.rounds}, reuse)
        results[name] = row
        print(f"  {name:<12} max rel diff {row['max_rel_diff']:.1e}  measured {', '.join(args.parts)}", file=sys.stderr)
    info["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "args": {**vars(args), "release": release}, "shapes": results}, f, indent=2)
    print(report(results, args, info))


def report(results: dict, args: argparse.Namespace, info: dict) -> str:
    """Markdown tables: times, memory, ratios against their goals, batch scaling."""
    lines = [
        f"Load average {info['loadavg']:.2f} before, {info['loadavg_end']:.2f} after; "
        f"batch {args.batch}, {args.rounds} alternated rounds, output width {args.output_dim}, "
        f"timed with {'glibc defaults' if args.system_malloc else 'freed memory kept for reuse'}.",
    ]
    timed = {name: row for name, row in results.items() if "time" in row}
    measured = {name: row for name, row in results.items() if "memory" in row}
    if timed:
        lines += [
            "",
            "| shape | max rel diff | " + " | ".join(f"{v} s" for v in VARIANTS) + " | cores busy |",
            "|---|--:|" + "--:|" * len(VARIANTS) + "--:|",
        ]
        for name, row in timed.items():
            t = row["time"]
            lines.append(
                f"| {name} | {row['max_rel_diff']:.1e} | "
                + " | ".join(f"{t[v]['median_s']:.2f}" for v in VARIANTS)
                + f" | {t[VARIANTS[0]]['cores_busy']:.1f} |"
            )
    if measured:
        lines += ["", "| shape | " + " | ".join(f"{v} MiB" for v in VARIANTS) + " |", "|---|" + "--:|" * len(VARIANTS)]
        for name, row in measured.items():
            lines.append(f"| {name} | " + " | ".join(f"{row['memory'][v]:,.0f}" for v in VARIANTS) + " |")
    both = {name: row for name, row in timed.items() if name in measured}
    if both:
        header = [f"time {a} / {b} (goal ≤ {g})" for a, b, g in TIME_RATIOS]
        header += [f"memory {a} / {b}" + (f" (goal ≤ {g})" if g else "") for a, b, g in MEMORY_RATIOS]
        header += ["time ours-recompute / ours-default"]
        lines += ["", "| shape | " + " | ".join(header) + " |", "|---|" + "--:|" * len(header)]
        for name, row in both.items():
            t, m = row["time"], row["memory"]
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
