"""How fast minidalle turns a prompt into images, against this machine's limits and min-dalle.

    python3 bench/bench_pipeline.py                  # mini shape on this CPU, fp32 and bf16
    python3 bench/bench_pipeline.py --shape mega --dtype bf16 --grid 3 --skip-min-dalle   # GPU

Builds a random model of the real shape in memory (the weights don't change the work), then, each
in a subprocess of its own so peak memory is its own, generates one image and a grid:
- seconds per image, image tokens per second, compile time, peak memory (RSS);
- the share of this machine's limit the token loop reaches. The limit is measured in the same run,
  before and after every configuration (the better of the two counts): read bandwidth (XLA summing
  1 GiB) and matmul peak (XLA, 2048³ fp32). A step of one image is
  bandwidth-bound (every weight read for two rows), a grid's step is compute-bound; the limit is the
  slower of bytes/bandwidth and flops/peak, summed over the 256 steps;
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


def step_cost(config, rows: int, weight_bytes: int) -> tuple[float, float]:
    """Bytes read and flops of one decode step for `rows` decoder rows (KV cache at half length)."""
    d, f, layers = config.d_model, config.decoder_ffn_dim, config.decoder_layers
    per_layer = 4 * d * d + 2 * d * d + 3 * d * f  # self q,k,v,out; cross q,out; GLU (cross k/v cached)
    weights = layers * per_layer + d * config.image_token_count
    cache_bytes = rows * layers * 2 * (config.image_length // 2) * d * weight_bytes
    cross_bytes = rows * layers * 2 * config.max_text_length * d * weight_bytes
    flops = 2 * rows * weights + rows * layers * 4 * d * (config.image_length // 2 + 64)
    return weights * weight_bytes + cache_bytes + cross_bytes, flops


def child_ours(args) -> dict:
    """One configuration of our pipeline; prints its figures as JSON."""
    import jax
    import numpy as np

    from minidalle.checkpoint import cast_floats, random_params
    from minidalle.config import DalleBartConfig
    from minidalle.pipeline import Pipeline
    from minidalle.vqgan import VQGANConfig, random_vqgan_params

    config = DalleBartConfig(**SHAPES[args.shape]).replace(dtype=args.dtype)
    params = cast_floats(random_params(config, SEED), config.dtype)
    vqgan_config = VQGANConfig()
    pipeline = Pipeline.from_params(config, params, vqgan_config,
                                    random_vqgan_params(vqgan_config, SEED),
                                    use_cpu_kernel=not args.no_kernel)
    del params
    n = args.grid * args.grid

    def tokens():
        return pipeline.generate_tokens(PROMPT_IDS, seed=SEED, n=n)

    started = time.perf_counter()
    codes = tokens()
    first_seconds = time.perf_counter() - started
    token_seconds = median_seconds(tokens, args.repeats)
    pipeline.decode_tokens(codes[:1])  # compile the VQGAN
    decode_seconds = median_seconds(lambda: pipeline.decode_tokens(codes), 1)
    rows = 2 * n  # super-conditioning: conditional and unconditional rows
    step_bytes, step_flops = step_cost(config, rows, np.dtype(config.dtype).itemsize)
    steps = config.image_length
    return {
        "shape": args.shape, "dtype": args.dtype, "grid": args.grid, "images": n,
        "kernel": not args.no_kernel and pipeline.params["lm_head"]["kernel"].ndim == 3,
        "token_seconds": token_seconds, "decode_seconds": decode_seconds,
        "compile_seconds": max(0.0, first_seconds - token_seconds),
        "seconds_per_image": (token_seconds + decode_seconds) / n,
        "tokens_per_second": steps * n / token_seconds,
        "bytes_per_run": steps * step_bytes, "flops_per_run": steps * step_flops,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
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


def run_name(result: dict) -> str:
    return (f"{result['shape']} {result['dtype']} {result['grid']}x{result['grid']}"
            + ("" if result["kernel"] else " (XLA dot)"))


def share_of_limit(result: dict, limits: dict) -> tuple[float, str]:
    bandwidth_seconds = result["bytes_per_run"] / limits["bandwidth_bytes_per_s"]
    compute_seconds = result["flops_per_run"] / limits["matmul_flops_per_s"]
    bound = "bandwidth" if bandwidth_seconds >= compute_seconds else "compute"
    return max(bandwidth_seconds, compute_seconds) / result["token_seconds"], bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mini")
    parser.add_argument("--dtype", action="append", choices=["fp32", "bf16", "fp16"],
                        help="repeatable; default fp32 and bf16")
    parser.add_argument("--grid", type=int, default=2, help="side of the grid run (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per configuration")
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

    # The machine is shared: its bandwidth and peak move by half between minutes. They are
    # measured before and after every run, and each run's share is against the better of the
    # two measurements around it, so a slow moment during a measurement can't flatter a run.
    measured = [machine_limits()]
    print(f"machine: {os.cpu_count()} cores, backend {measured[0]['backend']} "
          f"({measured[0]['device']})", flush=True)
    runs = []
    for dtype in dtypes:
        for grid in (1, args.grid):
            runs.append(["--shape", args.shape, "--dtype", dtype, "--grid", str(grid)])
    if not args.skip_no_kernel and measured[0]["backend"] == "cpu":
        runs.append(["--shape", args.shape, "--dtype", dtypes[0], "--grid", "1", "--no-kernel"])
    results = []
    for arguments in runs:
        result = run_child(["--child", "--repeats", str(args.repeats), *arguments])
        measured.append(machine_limits())
        result["limits"] = {key: max(measured[-2][key], measured[-1][key])
                            for key in ("bandwidth_bytes_per_s", "matmul_flops_per_s")}
        results.append(result)
        print(f"  ran {run_name(result)}: {result['seconds_per_image']:.2f} s/image", flush=True)
    print(f"{'run':28s} {'s/image':>8s} {'tokens/s':>9s} {'compile s':>9s} {'peak RSS':>9s} "
          f"{'VQGAN s':>8s} {'GB/s':>5s} {'GFLOP/s':>7s} {'limit share':>12s}")
    for result in results:
        share, bound = share_of_limit(result, result["limits"])
        print(f"{run_name(result):28s} {result['seconds_per_image']:8.2f} "
              f"{result['tokens_per_second']:9.1f} {result['compile_seconds']:9.1f} "
              f"{result['peak_rss_bytes'] / 2**30:8.2f}G "
              f"{result['decode_seconds'] / result['images']:8.2f} "
              f"{result['limits']['bandwidth_bytes_per_s'] / 1e9:5.1f} "
              f"{result['limits']['matmul_flops_per_s'] / 1e9:7.0f} {share:7.0%} {bound}")
    print("GB/s, GFLOP/s: the machine's read bandwidth and fp32 matmul peak (XLA) around each "
          f"run; seen {min(m['bandwidth_bytes_per_s'] for m in measured) / 1e9:.1f}-"
          f"{max(m['bandwidth_bytes_per_s'] for m in measured) / 1e9:.1f} GB/s and "
          f"{min(m['matmul_flops_per_s'] for m in measured) / 1e9:.0f}-"
          f"{max(m['matmul_flops_per_s'] for m in measured) / 1e9:.0f} GFLOP/s in this bench")

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
