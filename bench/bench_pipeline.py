"""How fast minidalle turns a prompt into images, against this machine's limits and min-dalle.

    python3 bench/bench_pipeline.py                  # mini shape on this CPU, fp32 and bf16
    python3 bench/bench_pipeline.py --shape mega --dtype bf16 --grid 3 --skip-min-dalle   # GPU
    bench/gpu.sh                                     # the GPU table: mini and mega, bf16 and int8

Builds a random model of the real shape in memory (the weights don't change the work), then, each
in a subprocess of its own so peak memory is its own, generates one image and a grid:
- seconds per image, image tokens per second, compile time, peak memory (RSS);
- the share of this machine's limit the token loop reaches. The limit is measured in the same
  process just before and just after every timed token loop (the better of the two counts): read
  bandwidth (XLA summing 1 GiB) and matmul peak (XLA, 2048³ fp32). A step of one image is
  bandwidth-bound (every weight read for two rows), a grid's step is compute-bound; the limit is the
  slower of bytes/bandwidth and flops/peak, summed over the 256 steps. Each loop gets its own
  share, and the median counts;
- the same image through XLA's own dot instead of our CPU matmul kernel (`--no-kernel` rows);
- one image through min-dalle (PyPI, PyTorch) on the same random weights, and the ratio.
With `--through-loader` each shape's random weights are written once as a checkpoint (in a
process of their own, while the configurations before them run) and every configuration loads
them through `Pipeline.load`, as the worker does. `--grid-only` runs only the grids
and prints bench/gpu.sh's table: images/s, s/grid, peak device memory, share of the bandwidth.
Token ids are fed directly (the random model has no tokenizer); prompts don't change the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.decode_step_cost import WeightBytes, step_cost

PROMPT_IDS = [0, 64, 2054, 1771, 9, 10, 23602, 11, 5, 3741, 2]  # a 9-token prompt, <s> … </s>
SEED = 7

SHAPES = {
    "mini": {},
    "mega": {"d_model": 2048, "encoder_layers": 24, "decoder_layers": 24,
             "encoder_attention_heads": 32, "decoder_attention_heads": 32,
             "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096, "encoder_vocab_size": 50272,
             "image_vocab_size": 16415, "init_std": 0.01},
    # tiny widths for bench/gpu.sh --smoke: the same code path in seconds on a CPU
    "smoke-mini": {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2,
                   "encoder_attention_heads": 4, "decoder_attention_heads": 4,
                   "encoder_ffn_dim": 96, "decoder_ffn_dim": 96},
    "smoke-mega": {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2,
                   "encoder_attention_heads": 4, "decoder_attention_heads": 4,
                   "encoder_ffn_dim": 128, "decoder_ffn_dim": 128, "encoder_vocab_size": 50272,
                   "image_vocab_size": 16415, "init_std": 0.01},
}
DTYPES = ("fp32", "bf16", "fp16", "int8")  # int8: weight-only, through the loader
DISPATCHES_PER_PROBE = 10  # on an accelerator: back to back, so launch latency does not count


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine_limits(probe_mib: int = 1024, probe_side: int = 2048) -> dict:
    """Read bandwidth (bytes/s) and fp32 matmul peak (flop/s) as XLA reaches them here."""
    import jax
    import jax.numpy as jnp

    # On a GPU one sum of 1 GiB takes ~0.3 ms, near a launch's latency: time several in a row.
    calls = 1 if jax.default_backend() == "cpu" else DISPATCHES_PER_PROBE

    def per_call_seconds(run, operand) -> float:
        def calls_in_a_row():
            for _ in range(calls - 1):
                run(operand)
            run(operand).block_until_ready()
        return median_seconds(calls_in_a_row, 7) / calls

    big = jnp.ones((probe_mib * 1024 * 1024 // 4,), jnp.float32)
    total = jax.jit(lambda a: a.sum())
    total(big).block_until_ready()
    bandwidth = big.nbytes / per_call_seconds(total, big)
    del big
    a = jnp.ones((probe_side, probe_side), jnp.float32)
    product = jax.jit(lambda a: a @ a)
    product(a).block_until_ready()
    peak = 2 * probe_side**3 / per_call_seconds(product, a)
    device = jax.devices()[0]
    return {"bandwidth_bytes_per_s": bandwidth, "matmul_flops_per_s": peak,
            "backend": jax.default_backend(), "device": f"{device} {device.device_kind}"}


def peak_device_bytes() -> int | None:
    """The device allocator's high-water mark; None where the backend keeps none (a CPU)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    return stats.get("peak_bytes_in_use") if stats else None


def vqgan_config_for(shape: str):
    from minidalle.tiny import TINY_VQGAN
    from minidalle.vqgan import VQGANConfig

    return TINY_VQGAN if shape.startswith("smoke") else VQGANConfig()


def child_write_checkpoint(args) -> None:
    """Random weights of one shape, written once as a published-layout checkpoint."""
    from minidalle.config import DalleBartConfig
    from minidalle.tiny import write_random_checkpoint

    config = DalleBartConfig(**SHAPES[args.shape])
    write_random_checkpoint(args.write_checkpoint, lambda _text_vocab_size: config,
                            vqgan_config_for(args.shape), SEED)


def load_pipeline(args):
    """The pipeline from the shape's checkpoint through the real loader, or built in memory."""
    import jax

    from minidalle.checkpoint import cast_floats, quantize_kernels
    from minidalle.config import DalleBartConfig, runtime_dtypes
    from minidalle.pipeline import Pipeline
    from minidalle.random_weights import random_params, random_vqgan_params

    backend = "xla" if args.no_kernel else "auto"
    if args.checkpoint:  # no persistent compilation cache: the compile time is the real one
        return Pipeline.load(args.checkpoint, dtype=args.dtype, compilation_cache_dir=False,
                             backend=backend)
    config = DalleBartConfig(**SHAPES[args.shape]).replace(
        **runtime_dtypes(args.dtype, jax.default_backend()))
    params = cast_floats(random_params(config, SEED), config.dtype)
    if config.weight_dtype is not None:  # int8: the dense kernels quantized, as load_params does
        params = quantize_kernels(params)
    vqgan_config = vqgan_config_for(args.shape)
    return Pipeline.from_params(config, params, vqgan_config,
                                random_vqgan_params(vqgan_config, SEED), backend=backend)


def child_ours(args) -> dict:
    """One configuration of our pipeline; prints its figures as JSON."""
    import jax

    from minidalle.config import DalleBartConfig

    config = DalleBartConfig(**SHAPES[args.shape])
    pipeline = load_pipeline(args)
    n = args.grid * args.grid

    def tokens():
        return pipeline.generate_tokens(PROMPT_IDS, seed=SEED, n=n)

    started = time.perf_counter()
    codes = tokens()
    first_seconds = time.perf_counter() - started
    pipeline.decode_tokens(codes[:1])  # compile the VQGAN
    decode_seconds = median_seconds(lambda: pipeline.decode_tokens(codes), 1)
    # the pipeline's own peaks, before the limit probes allocate their 1 GiB
    peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_device = peak_device_bytes()
    rows = 2 * n  # super-conditioning: conditional and unconditional rows
    step_bytes, step_flops = step_cost(config, rows,
                                       WeightBytes.for_dtype(args.dtype, jax.default_backend()))
    steps = config.image_length
    cost = {"bytes_per_run": steps * step_bytes, "flops_per_run": steps * step_flops}

    # The machine is shared: its bandwidth and peak move by half between minutes, and a probe
    # before and after a whole configuration missed what happened in between. So every timed
    # loop is held against the better of the probes just before and just after it.
    probe_sizes = (args.probe_mib, args.probe_side)
    probes = [machine_limits(*probe_sizes)]
    loops = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        tokens()
        seconds = time.perf_counter() - started
        probes.append(machine_limits(*probe_sizes))
        limits = {key: max(probes[-2][key], probes[-1][key])
                  for key in ("bandwidth_bytes_per_s", "matmul_flops_per_s")}
        share, bound = share_of_limit(cost, seconds, limits)
        bandwidth_share = cost["bytes_per_run"] / limits["bandwidth_bytes_per_s"] / seconds
        loops.append({"token_seconds": seconds, "limits": limits, "share": share, "bound": bound,
                      "bandwidth_share": bandwidth_share})
    median_loop = sorted(loops, key=lambda loop: loop["share"])[len(loops) // 2]
    token_seconds = statistics.median(loop["token_seconds"] for loop in loops)
    grid_seconds = token_seconds + decode_seconds
    return {
        "shape": args.shape, "dtype": args.dtype, "grid": args.grid, "images": n,
        "kernel": pipeline.config.backend.name == "cpu", "xla_dot": args.no_kernel,
        "token_seconds": token_seconds, "decode_seconds": decode_seconds,
        "compile_seconds": max(0.0, first_seconds - token_seconds),
        "seconds_per_image": grid_seconds / n, "grid_seconds": grid_seconds,
        "images_per_second": n / grid_seconds,
        "tokens_per_second": steps * n / token_seconds,
        "bandwidth_share": statistics.median(loop["bandwidth_share"] for loop in loops),
        **cost, "loops": loops, "median_loop": median_loop, "probes": probes,
        "peak_rss_bytes": peak_rss_bytes, "peak_device_bytes": peak_device,
        "backend": jax.default_backend(),
    }


def run_child(arguments: list[str], timeout: int = 1800) -> dict:
    completed = subprocess.run([sys.executable, __file__, *arguments], capture_output=True,
                               text=True, timeout=timeout, cwd=REPO, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_min_dalle() -> dict:
    completed = subprocess.run([sys.executable, str(REPO / "bench" / "min_dalle_image.py")],
                               capture_output=True, text=True, timeout=3600, cwd=REPO,
                               check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"min-dalle failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_all(args, shapes: list[str], dtypes: list[str], scratch: Path) -> list[dict]:
    """Every configuration of every shape, each in a subprocess of its own."""
    writers = start_checkpoint_writers(shapes, scratch) if args.through_loader else {}
    grids = (args.grid,) if args.grid_only else (1, args.grid)
    results = []
    try:
        for shape in shapes:
            loading = []
            if writers:
                loading = ["--checkpoint", str(wait_for_checkpoint(writers, shape))]
            for dtype in dtypes:
                for grid in grids:
                    results.append(run_configuration(
                        args, shape, ["--dtype", dtype, "--grid", str(grid), *loading]))
            if not (args.skip_no_kernel or args.grid_only) and results[0]["backend"] == "cpu":
                results.append(run_configuration(
                    args, shape, ["--dtype", dtypes[0], "--grid", "1", "--no-kernel", *loading]))
    finally:
        for process, _folder, log in writers.values():  # a failure stops the writers still on
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    return results


def run_name(result: dict) -> str:
    return (f"{result['shape']} {result['dtype']} {result['grid']}x{result['grid']}"
            + (" (XLA dot)" if result["xla_dot"] else ""))


def share_of_limit(cost: dict, token_seconds: float, limits: dict) -> tuple[float, str]:
    """The fastest the loop could run at these limits, over how long it took; and which bound."""
    bandwidth_seconds = cost["bytes_per_run"] / limits["bandwidth_bytes_per_s"]
    compute_seconds = cost["flops_per_run"] / limits["matmul_flops_per_s"]
    bound = "bandwidth" if bandwidth_seconds >= compute_seconds else "compute"
    return max(bandwidth_seconds, compute_seconds) / token_seconds, bound


def run_configuration(args, shape: str, arguments: list[str]) -> dict:
    result = run_child(["--child", "--repeats", str(args.repeats), "--shape", shape,
                        "--probe-mib", str(args.probe_mib), "--probe-side", str(args.probe_side),
                        *arguments])
    shares = ", ".join(f"{loop['share']:.0%}" for loop in result["loops"])
    print(f"  ran {run_name(result)}: {result['seconds_per_image']:.2f} s/image, token loop "
          f"shares {shares}", flush=True)
    return result


def start_checkpoint_writers(shapes: list[str], scratch: Path) -> dict:
    """One process per shape writing its random checkpoint, on the CPU (never the GPU the
    configurations measure); they run while the shapes before theirs are measured."""
    writers = {}
    for shape in shapes:
        folder = scratch / shape
        log = open(scratch / f"{shape}.log", "w")  # noqa: SIM115 - closed in wait_for_checkpoint
        process = subprocess.Popen(
            [sys.executable, __file__, "--write-checkpoint", str(folder), "--shape", shape],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "JAX_PLATFORMS": "cpu"})
        writers[shape] = (process, folder, log)
    return writers


def wait_for_checkpoint(writers: dict, shape: str) -> Path:
    process, folder, log = writers[shape]
    returncode = process.wait()
    log.close()
    if returncode != 0:
        output = Path(log.name).read_text()[-3000:]
        raise RuntimeError(f"writing the {shape} checkpoint failed:\n{output}")
    return folder


def print_cpu_table(results: list[dict]) -> None:
    print(f"{'run':30s} {'s/image':>8s} {'tokens/s':>9s} {'compile s':>9s} {'peak RSS':>9s} "
          f"{'VQGAN s':>8s} {'GB/s':>5s} {'GFLOP/s':>7s} {'limit share':>12s}")
    for result in results:
        loop = result["median_loop"]
        print(f"{run_name(result):30s} {result['seconds_per_image']:8.2f} "
              f"{result['tokens_per_second']:9.1f} {result['compile_seconds']:9.1f} "
              f"{result['peak_rss_bytes'] / 2**30:8.2f}G "
              f"{result['decode_seconds'] / result['images']:8.2f} "
              f"{loop['limits']['bandwidth_bytes_per_s'] / 1e9:5.1f} "
              f"{loop['limits']['matmul_flops_per_s'] / 1e9:7.0f} {loop['share']:7.0%} "
              f"{loop['bound']}")
    probes = [probe for result in results for probe in result["probes"]]
    print("limit share: the median over the timed token loops, each against the better of the "
          "machine's limits probed just before and just after it (GB/s: XLA's read bandwidth, "
          "GFLOP/s: its fp32 matmul peak, shown for that median loop); seen "
          f"{min(p['bandwidth_bytes_per_s'] for p in probes) / 1e9:.1f}-"
          f"{max(p['bandwidth_bytes_per_s'] for p in probes) / 1e9:.1f} GB/s and "
          f"{min(p['matmul_flops_per_s'] for p in probes) / 1e9:.0f}-"
          f"{max(p['matmul_flops_per_s'] for p in probes) / 1e9:.0f} GFLOP/s in this bench")


def gibibytes(count: int | None) -> str:
    return "n/a" if count is None else f"{count / 2**30:.2f}G"


def print_grid_table(results: list[dict]) -> None:
    """bench/gpu.sh's table: one row per grid configuration (bench/README.md, "GPU")."""
    print(f"{'run':20s} {'images/s':>9s} {'s/grid':>8s} {'compile s':>9s} {'peak device':>11s} "
          f"{'peak RSS':>9s} {'GB/s':>7s} {'bandwidth share':>15s}")
    for result in results:
        print(f"{run_name(result):20s} {result['images_per_second']:9.2f} "
              f"{result['grid_seconds']:8.2f} {result['compile_seconds']:9.1f} "
              f"{gibibytes(result['peak_device_bytes']):>11s} "
              f"{gibibytes(result['peak_rss_bytes']):>9s} "
              f"{result['median_loop']['limits']['bandwidth_bytes_per_s'] / 1e9:7.1f} "
              f"{result['bandwidth_share']:15.0%}")
    print("bandwidth share: the token loop's bytes (bench/decode_step_cost.py) over the probed "
          "read bandwidth (GB/s, XLA summing a buffer), over the loop's seconds; median of the "
          "timed loops. images/s and s/grid include the VQGAN; peak device: the allocator's "
          "high-water mark (n/a where the backend keeps none, as on a CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES),
                        help="repeatable; default mini")
    parser.add_argument("--dtype", action="append", choices=DTYPES,
                        help="repeatable; default fp32 and bf16")
    parser.add_argument("--grid", type=int, default=2, help="side of the grid run (default 2)")
    parser.add_argument("--grid-only", action="store_true",
                        help="run only the grids and print the GPU table (bench/gpu.sh)")
    parser.add_argument("--through-loader", action="store_true",
                        help="write each shape's checkpoint once and load it with Pipeline.load")
    parser.add_argument("--scratch", type=Path, help="where those checkpoints go (default: a "
                        "temporary folder, removed after)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed token loops per configuration (default 3)")
    parser.add_argument("--probe-mib", type=int, default=1024,
                        help="MiB the bandwidth probe reads (default 1024)")
    parser.add_argument("--probe-side", type=int, default=2048,
                        help="side of the matmul probe's square (default 2048)")
    parser.add_argument("--skip-min-dalle", action="store_true")
    parser.add_argument("--skip-no-kernel", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write-checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-kernel", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = args.shape or ["mini"]
    if args.write_checkpoint:
        args.shape = shapes[0]
        child_write_checkpoint(args)
        return
    if args.child:
        args.shape, args.dtype = shapes[0], args.dtype[0]
        print(json.dumps(child_ours(args)))
        return
    dtypes = args.dtype or ["fp32", "bf16"]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-", dir=args.scratch) as scratch:
        results = run_all(args, shapes, dtypes, Path(scratch))
    print(f"machine: {os.cpu_count()} cores, backend {results[0]['backend']} "
          f"({results[0]['probes'][0]['device']})")
    if args.grid_only:
        print_grid_table(results)
        return
    print_cpu_table(results)

    single = [r for r in results if r["grid"] == 1 and not r["xla_dot"] and r["shape"] == "mini"]
    plain = [r for r in results if r["xla_dot"] and r["shape"] == "mini"]
    if plain and single:
        ours = next(r for r in single if r["dtype"] == plain[0]["dtype"])
        print(f"our CPU matmul kernel vs XLA's dot, token loop of one image: "
              f"{plain[0]['token_seconds'] / ours['token_seconds']:.2f}x faster")
    if args.skip_min_dalle or "mini" not in shapes:
        return
    theirs = run_min_dalle()
    print(f"min-dalle (PyTorch {theirs.get('torch', '')}, fp32) one image: "
          f"{theirs['seconds']:.1f} s, {256 / theirs['seconds']:.1f} image tokens/s, "
          f"peak RSS {theirs['peak_rss_bytes'] / 2**30:.2f}G")
    for result in single:
        print(f"  ours {result['dtype']}: {result['seconds_per_image']:.2f} s per image → "
              f"{theirs['seconds'] / result['seconds_per_image']:.1f}x faster than min-dalle "
              f"(target >= 5x)")


if __name__ == "__main__":
    main()
