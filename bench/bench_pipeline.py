"""How fast minidalle turns a prompt into images, against this machine's limits and min-dalle.

    python3 bench/bench_pipeline.py                  # mini shape on this CPU, fp32 and bf16
    python3 bench/bench_pipeline.py --shape mega --dtype bf16 --grid 3 --skip-min-dalle   # GPU

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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPT_IDS = [0, 64, 2054, 1771, 9, 10, 23602, 11, 5, 3741, 2]  # a 9-token prompt, <s> … </s>
SEED = 7

SHAPES = {
    "mini": {},
    "mega": {"d_model": 2048, "encoder_layers": 24, "decoder_layers": 24,
             "encoder_attention_heads": 32, "decoder_attention_heads": 32,
             "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096, "encoder_vocab_size": 50272,
             "image_vocab_size": 16415, "init_std": 0.01},
}


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine_limits() -> dict:
    """Read bandwidth (bytes/s) and fp32 matmul peak (flop/s) as XLA reaches them here."""
    import jax
    import jax.numpy as jnp

    big = jnp.ones((256 * 1024 * 1024,), jnp.float32)  # 1 GiB
    total = jax.jit(lambda a: a.sum())
    total(big).block_until_ready()
    bandwidth = big.nbytes / median_seconds(lambda: total(big).block_until_ready(), 7)
    side = 2048
    a = jnp.ones((side, side), jnp.float32)
    product = jax.jit(lambda a: a @ a)
    product(a).block_until_ready()
    peak = 2 * side**3 / median_seconds(lambda: product(a).block_until_ready(), 7)
    return {"bandwidth_bytes_per_s": bandwidth, "matmul_flops_per_s": peak,
            "backend": jax.default_backend(), "device": str(jax.devices()[0])}


def step_cost(config, rows: int, weight_bytes: int, cache_bytes: int | None = None
              ) -> tuple[float, float]:
    """Bytes read and flops of one decode step for `rows` decoder rows (KV cache at half length);
    the KV cache's bytes per value are the weights' unless given (int8 weights: a bf16 cache)."""
    cache_bytes = weight_bytes if cache_bytes is None else cache_bytes
    d, f, layers = config.d_model, config.decoder_ffn_dim, config.decoder_layers
    per_layer = 4 * d * d + 2 * d * d + 3 * d * f  # self q,k,v,out; cross q,out; GLU (cross k/v cached)
    weights = layers * per_layer + d * config.image_token_count
    cache = rows * layers * 2 * (config.image_length // 2) * d * cache_bytes
    cross = rows * layers * 2 * config.max_text_length * d * cache_bytes
    flops = 2 * rows * weights + rows * layers * 4 * d * (config.image_length // 2 + 64)
    return weights * weight_bytes + cache + cross, flops


def child_ours(args) -> dict:
    """One configuration of our pipeline; prints its figures as JSON."""
    import jax
    import numpy as np

    from minidalle.checkpoint import cast_floats, quantize_kernels
    from minidalle.config import DalleBartConfig, runtime_dtypes
    from minidalle.pipeline import Pipeline
    from minidalle.random_weights import random_params, random_vqgan_params
    from minidalle.vqgan import VQGANConfig

    config = DalleBartConfig(**SHAPES[args.shape]).replace(
        **runtime_dtypes(args.dtype, jax.default_backend()))
    params = cast_floats(random_params(config, SEED), config.dtype)
    if config.weight_dtype is not None:  # int8: the dense kernels quantized, as load_params does
        params = quantize_kernels(params)
    vqgan_config = VQGANConfig()
    pipeline = Pipeline.from_params(config, params, vqgan_config,
                                    random_vqgan_params(vqgan_config, SEED),
                                    backend="xla" if args.no_kernel else "auto")
    del params
    n = args.grid * args.grid

    def tokens():
        return pipeline.generate_tokens(PROMPT_IDS, seed=SEED, n=n)

    started = time.perf_counter()
    codes = tokens()
    first_seconds = time.perf_counter() - started
    pipeline.decode_tokens(codes[:1])  # compile the VQGAN
    decode_seconds = median_seconds(lambda: pipeline.decode_tokens(codes), 1)
    # the pipeline's own peak, before the limit probes allocate their 1 GiB
    peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rows = 2 * n  # super-conditioning: conditional and unconditional rows
    step_bytes, step_flops = step_cost(config, rows, np.dtype(config.weight_dtype or config.dtype)
                                       .itemsize, np.dtype(config.cache_dtype or config.dtype)
                                       .itemsize)
    steps = config.image_length
    cost = {"bytes_per_run": steps * step_bytes, "flops_per_run": steps * step_flops}

    # The machine is shared: its bandwidth and peak move by half between minutes, and a probe
    # before and after a whole configuration missed what happened in between. So every timed
    # loop is held against the better of the probes just before and just after it.
    probes = [machine_limits()]
    loops = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        tokens()
        seconds = time.perf_counter() - started
        probes.append(machine_limits())
        limits = {key: max(probes[-2][key], probes[-1][key])
                  for key in ("bandwidth_bytes_per_s", "matmul_flops_per_s")}
        share, bound = share_of_limit(cost, seconds, limits)
        loops.append({"token_seconds": seconds, "limits": limits, "share": share, "bound": bound})
    median_loop = sorted(loops, key=lambda loop: loop["share"])[len(loops) // 2]
    token_seconds = statistics.median(loop["token_seconds"] for loop in loops)
    return {
        "shape": args.shape, "dtype": args.dtype, "grid": args.grid, "images": n,
        "kernel": pipeline.config.backend.name == "cpu",
        "token_seconds": token_seconds, "decode_seconds": decode_seconds,
        "compile_seconds": max(0.0, first_seconds - token_seconds),
        "seconds_per_image": (token_seconds + decode_seconds) / n,
        "tokens_per_second": steps * n / token_seconds,
        **cost, "loops": loops, "median_loop": median_loop, "probes": probes,
        "peak_rss_bytes": peak_rss_bytes, "backend": jax.default_backend(),
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


def run_name(result: dict) -> str:
    return (f"{result['shape']} {result['dtype']} {result['grid']}x{result['grid']}"
            + ("" if result["kernel"] else " (XLA dot)"))


def share_of_limit(cost: dict, token_seconds: float, limits: dict) -> tuple[float, str]:
    """The fastest the loop could run at these limits, over how long it took; and which bound."""
    bandwidth_seconds = cost["bytes_per_run"] / limits["bandwidth_bytes_per_s"]
    compute_seconds = cost["flops_per_run"] / limits["matmul_flops_per_s"]
    bound = "bandwidth" if bandwidth_seconds >= compute_seconds else "compute"
    return max(bandwidth_seconds, compute_seconds) / token_seconds, bound


def run_configuration(args, arguments: list[str]) -> dict:
    result = run_child(["--child", "--repeats", str(args.repeats), "--shape", args.shape,
                        *arguments])
    shares = ", ".join(f"{loop['share']:.0%}" for loop in result["loops"])
    print(f"  ran {run_name(result)}: {result['seconds_per_image']:.2f} s/image, token loop "
          f"shares {shares}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mini")
    parser.add_argument("--dtype", action="append", choices=["fp32", "bf16", "fp16", "int8"],
                        help="repeatable; default fp32 and bf16")
    parser.add_argument("--grid", type=int, default=2, help="side of the grid run (default 2)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed token loops per configuration (default 3)")
    parser.add_argument("--skip-min-dalle", action="store_true")
    parser.add_argument("--skip-no-kernel", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-kernel", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.dtype = args.dtype[0]
        print(json.dumps(child_ours(args)))
        return
    dtypes = args.dtype or ["fp32", "bf16"]

    results = []
    for dtype in dtypes:
        for grid in (1, args.grid):
            results.append(run_configuration(args, ["--dtype", dtype, "--grid", str(grid)]))
    if not args.skip_no_kernel and results[0]["backend"] == "cpu":
        results.append(run_configuration(args, ["--dtype", dtypes[0], "--grid", "1",
                                                "--no-kernel"]))
    print(f"machine: {os.cpu_count()} cores, backend {results[0]['backend']} "
          f"({results[0]['probes'][0]['device']})")
    print(f"{'run':28s} {'s/image':>8s} {'tokens/s':>9s} {'compile s':>9s} {'peak RSS':>9s} "
          f"{'VQGAN s':>8s} {'GB/s':>5s} {'GFLOP/s':>7s} {'limit share':>12s}")
    for result in results:
        loop = result["median_loop"]
        print(f"{run_name(result):28s} {result['seconds_per_image']:8.2f} "
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

    single = [r for r in results if r["grid"] == 1 and r["kernel"]]
    plain = [r for r in results if not r["kernel"]]
    if plain and single:
        ours = next(r for r in single if r["dtype"] == plain[0]["dtype"])
        print(f"our CPU matmul kernel vs XLA's dot, token loop of one image: "
              f"{plain[0]['token_seconds'] / ours['token_seconds']:.2f}x faster")
    if args.skip_min_dalle or args.shape != "mini":
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
