"""Benchmark of the PAVE patch (:class:`pave.patch.PavePatch`) on CPU.

What it measures, for each of the paper's four side-channel shapes (Appendix B.5) and each batch
size, with the paper's patch configuration (``PatchConfig`` defaults: 2 layers of width 512, 4
heads, 1152-d SigLIP query features, 32 key frames of 14x14 visual tokens):

* forward (under ``torch.inference_mode``) and forward+backward (gradients for every patch
  parameter, none for the inputs, which are frozen encoder outputs) wall time: the median of
  the timed runs after one warm-up run;
* FLOPs of one pass, counted with ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
  multiply-add; the CPU flash-attention kernels, which the counter does not know, are counted
  with its own SDPA formulas), and the achieved GFLOP/s;
* the GFLOP/s of a plain ``torch.mm`` of (B*32*196, 512) x (512, 512), measured in the same
  process right after the case, as a reference for what the matmul kernels reach at this size;
* cores busy: process CPU time over wall time of the timed runs (about the thread count when
  the machine is otherwise idle, less when other processes compete for the cores);
* peak memory: the growth of the process's peak resident set size (``VmHWM``, reset through
  ``/proc/self/clear_refs``) during the warm-up run, in a fresh subprocess per case, above the
  resident size once the patch and its inputs exist. It covers activations, tensors saved for
  backward, gradients and kernel workspaces; not the weights or the inputs.

Optionally (on by default) a sweep of the audio side length at batch 1 checks that time and
memory grow linearly, not quadratically, with the number of side tokens.

Usage: ``python benchmarks/bench_patch.py [--batch 1 8] [--repeats 3] [--json OUT]``.
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
from dataclasses import asdict, dataclass

KEY_FRAMES = 32
QUERY_GRID = (14, 14)
QUERY_DIM = 1152


@dataclass(frozen=True)
class Shape:
    """A side channel: T_s side frames of an (s_h, s_w) grid of side_dim-d tokens."""

    side_frames: int
    side_grid: tuple[int, int]
    side_dim: int
    rope: str
    note: str

    @property
    def side_tokens(self) -> int:
        return self.side_frames * self.side_grid[0] * self.side_grid[1]


SHAPES = {
    "audio": Shape(120, (1, 1), 1024, "temporal", "120 s of ImageBind audio, 1 token/s"),
    "dense-video": Shape(240, (2, 2), 1024, "3d", "2 min at 2 fps, LanguageBind pooled to 2x2"),
    "3d": Shape(32, (24, 24), 1024, "3d", "32 RGB-D frames, 576 tokens each"),
    "multi-view": Shape(128, (14, 14), 1152, "3d", "4 exo views x 32 frames of SigLIP 14x14"),
}


# ----------------------------------------------------------------------------- worker side


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> None:
    """Reset VmHWM to the current resident size (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _flop_counter():
    """A FlopCounterMode that also counts the CPU flash-attention kernels SDPA dispatches to."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad_out, query, key, value)

    return FlopCounterMode(
        display=False,
        custom_mapping={
            aten._scaled_dot_product_flash_attention_for_cpu: forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: backward,
        },
    )


def run_case(spec: dict) -> dict:
    """Build the patch and inputs of one case, then measure memory, FLOPs and time of one mode.

    The first (warm-up) run is the one whose peak memory and FLOPs are recorded.
    """
    import torch

    from pave.patch import PatchConfig, PavePatch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    dtype = getattr(torch, spec["dtype"])
    shape = Shape(**{**spec["shape"], "side_grid": tuple(spec["shape"]["side_grid"])})
    batch, backward = spec["batch"], spec["mode"] == "fwd+bwd"
    config = PatchConfig(side_dim=shape.side_dim, output_dim=spec["output_dim"], rope=shape.rope)
    patch = PavePatch(config).to(dtype).train(backward)
    visual = torch.randn(batch, KEY_FRAMES, *QUERY_GRID, spec["output_dim"], dtype=dtype)
    query_features = torch.randn(batch, KEY_FRAMES, *QUERY_GRID, QUERY_DIM, dtype=dtype)
    side = torch.randn(batch, shape.side_frames, *shape.side_grid, shape.side_dim, dtype=dtype)
    grad = torch.randn_like(visual) if backward else None

    def forward():
        return patch(visual, side, query_features=query_features).delta

    def step(count: bool = False) -> tuple[int, int]:
        """One pass; with ``count`` returns (forward FLOPs, backward FLOPs)."""
        fwd_flops = bwd_flops = 0
        if not backward:
            with torch.inference_mode():
                if count:
                    with _flop_counter() as counter:
                        forward()
                    fwd_flops = counter.get_total_flops()
                else:
                    forward()
            return fwd_flops, bwd_flops
        if count:
            with _flop_counter() as counter:
                delta = forward()
            fwd_flops = counter.get_total_flops()
            with _flop_counter() as counter:
                delta.backward(grad)
            bwd_flops = counter.get_total_flops()
        else:
            forward().backward(grad)
        patch.zero_grad(set_to_none=True)
        return fwd_flops, bwd_flops

    _reset_peak_rss()
    base_kib = _status_kib("VmRSS")
    start = time.perf_counter()
    fwd_flops, bwd_flops = step(count=True)
    warmup_s = time.perf_counter() - start
    peak_kib = _status_kib("VmHWM")

    repeats = max(1, min(spec["repeats"], int(spec["budget"] / max(warmup_s, 1e-9))))
    times, busy = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        busy.append((time.process_time() - cpu_start) / times[-1])
    return {
        "forward_flops": fwd_flops,
        "backward_flops": bwd_flops,
        "warmup_s": warmup_s,
        "times_s": times,
        "median_s": statistics.median(times),
        "peak_growth_mib": (peak_kib - base_kib) / 1024,
        "cores_busy": statistics.median(busy),
        "mm_gflops_per_s": mm_gflops(batch * KEY_FRAMES * QUERY_GRID[0] * QUERY_GRID[1], spec["dtype"]),
    }


def synchronize(device: str) -> None:
    """Wait for the device's queued kernels, so wall time covers them."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def mm_gflops(
    rows: int, dtype_name: str, inner: int = 512, cols: int = 512, device: str = "cpu", repeats: int = 10
) -> float:
    """GFLOP/s of (rows, inner) x (inner, cols) torch.mm: median of ``repeats`` timed runs."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(rows, inner).to(device, dtype)
    b = torch.randn(inner, cols).to(device, dtype)
    out = torch.empty(rows, cols, dtype=dtype, device=device)
    for _ in range(3):
        torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * rows * inner * cols / statistics.median(times) / 1e9


# ----------------------------------------------------------------------------- driver side


def spawn(spec: dict) -> dict:
    """Run one case in a fresh interpreter, so its peak memory is its own."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {spec} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    import torch

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg": os.getloadavg()[0],
    }


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def measure(name: str, shape: Shape, batch: int, args: argparse.Namespace) -> dict:
    row = {"shape": name, "batch": batch, "side_tokens": shape.side_tokens}
    for mode in ("fwd", "fwd+bwd"):
        spec = {
            "shape": asdict(shape),
            "batch": batch,
            "mode": mode,
            "output_dim": args.output_dim,
            "threads": args.threads,
            "dtype": args.dtype,
            "repeats": args.repeats,
            "budget": args.budget,
        }
        result = spawn(spec)
        flops = result["forward_flops"] + result["backward_flops"]
        row[mode] = {**result, "flops": flops, "gflops_per_s": flops / result["median_s"] / 1e9}
        print(
            f"  {name:<12} B={batch} {mode:<8} {result['median_s'] * 1e3:9.1f} ms "
            f"(n={len(result['times_s'])})  {flops / 1e9:8.1f} GFLOP  "
            f"peak +{result['peak_growth_mib']:.0f} MiB  cores busy {result['cores_busy']:.1f}",
            file=sys.stderr,
        )
    return row


def main_table(rows: list[dict]) -> str:
    lines = [
        "| shape | B | side tokens | fwd GFLOP | fwd ms (n) | fwd GFLOP/s | fwd peak MiB "
        "| fwd+bwd GFLOP | fwd+bwd ms (n) | fwd+bwd GFLOP/s | fwd+bwd peak MiB | mm GFLOP/s | cores busy |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        f, b = r["fwd"], r["fwd+bwd"]
        lines.append(
            f"| {r['shape']} | {r['batch']} | {r['side_tokens']:,} "
            f"| {_fmt(f['flops'] / 1e9)} | {_fmt(f['median_s'] * 1e3, 0)} ({len(f['times_s'])}) "
            f"| {_fmt(f['gflops_per_s'])} | {_fmt(f['peak_growth_mib'], 0)} "
            f"| {_fmt(b['flops'] / 1e9)} | {_fmt(b['median_s'] * 1e3, 0)} ({len(b['times_s'])}) "
            f"| {_fmt(b['gflops_per_s'])} | {_fmt(b['peak_growth_mib'], 0)} | {_fmt(b['mm_gflops_per_s'])} "
            f"| {f['cores_busy']:.1f} / {b['cores_busy']:.1f} |"
        )
    return "\n".join(lines)


def sweep_table(rows: list[dict]) -> str:
    lines = [
        "| audio side tokens | fwd GFLOP | fwd ms | fwd peak MiB | fwd+bwd ms | fwd+bwd peak MiB |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        f, b = r["fwd"], r["fwd+bwd"]
        lines.append(
            f"| {r['side_tokens']:,} | {_fmt(f['flops'] / 1e9)} | {_fmt(f['median_s'] * 1e3, 0)} "
            f"| {_fmt(f['peak_growth_mib'], 0)} | {_fmt(b['median_s'] * 1e3, 0)} "
            f"| {_fmt(b['peak_growth_mib'], 0)} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (default: 3)")
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds of timed runs per case; fewer repeats (at least 1) when the warm-up shows "
        "--repeats would exceed it (default: 30)",
    )
    parser.add_argument(
        "--output-dim", type=int, default=896, help="LLM hidden size: 896 for 0.5B (default), 3584 for 7B"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: nproc)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument(
        "--sweep",
        type=int,
        nargs="*",
        default=[120, 1200, 12000],
        help="audio side lengths measured at batch 1 (default: 120 1200 12000; none to skip)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write every measurement to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_case(json.loads(args.worker))))
        return

    info = machine()
    info.update(threads=args.threads, dtype=args.dtype, output_dim=args.output_dim)
    print(
        f"nproc {info['nproc']}, {info['cpu']}, torch {info['torch']}, {args.threads} threads, "
        f"{args.dtype}, output_dim {args.output_dim}, load average {info['loadavg']:.2f}",
        file=sys.stderr,
    )
    rows = [measure(name, SHAPES[name], batch, args) for batch in args.batch for name in args.shapes]
    sweep = []
    for length in args.sweep:
        shape = Shape(length, (1, 1), 1024, "temporal", f"audio, {length} side tokens")
        sweep.append(measure("audio", shape, 1, args))

    info["loadavg_end"] = os.getloadavg()[0]
    print(main_table(rows))
    if sweep:
        print()
        print(sweep_table(sweep))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "args": vars(args), "rows": rows, "sweep": sweep}, f, indent=2)


if __name__ == "__main__":
    main()
