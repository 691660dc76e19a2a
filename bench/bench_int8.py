"""What weight-only int8 costs in fidelity, against bf16, on random weights of the real mini shape.

    python3 bench/bench_int8.py                  # mini shape, 4 prompts (~5 minutes on 2 cores)
    python3 bench/bench_int8.py --shape tiny     # the tiny demo shape, seconds
    python3 bench/bench_int8.py --model DIR      # any model folder (real weights, where you have them)

One checkpoint is written in the published format and loaded through `Pipeline.load` at fp32,
bf16 and int8, as this machine runs each (on a CPU int8 keeps fp32 activations; on a GPU bf16).
For each prompt it prints, int8 against bf16 (and each against fp32):
- the share of identical greedy tokens (top-k 1, super-conditioning on, 256 steps): a token that
  differs changes every later step's input, so this counts from the first divergence on too;
- the mean absolute error of the teacher-forced logits (the uncached model fed the fp32 greedy
  tokens, so every dtype sees the same inputs), beside the fp32 logits' standard deviation, and
  the share of steps whose argmax agrees on those same inputs (no divergence compounds there);
- the PSNR of the decoded images (same fp32 VQGAN), in dB: of the greedy images, and of the
  teacher-forced argmax tokens' images (same inputs again); a last row gives the PSNR of two
  unrelated images (the bf16 greedy images of two different prompts), the level that means
  "nothing in common".
Random weights make near-flat logits, where greedy decoding is far more fragile than on trained
weights; the figures are a floor on what int8 keeps, not a forecast for real weights.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

PROMPTS = ("a painting of a fox in the snow", "an astronaut riding a horse on the moon",
           "a bowl of ramen, studio lighting", "sunset over a mountain lake, oil on canvas")
DTYPES = ("fp32", "bf16", "int8")
BOS = 16384


def write_checkpoint(shape: str, folder: Path) -> Path:
    from minidalle.config import DalleBartConfig
    from minidalle.tiny import write_random_checkpoint, write_tiny_checkpoint
    from minidalle.vqgan import VQGANConfig

    if shape == "tiny":
        return write_tiny_checkpoint(folder / "tiny")
    return write_random_checkpoint(folder / "mini", lambda _vocab: DalleBartConfig(),
                                   VQGANConfig())


def teacher_forced_logits(model_dir: Path, pipeline, dtype: str, prompt: str, codes) -> np.ndarray:
    """Conditional logits [256, codes] of the uncached model, the weights as `Pipeline.load`
    reads them at `dtype` on this platform."""
    import jax
    import jax.numpy as jnp

    from minidalle.checkpoint import load_params
    from minidalle.config import DalleBartConfig, runtime_dtypes
    from minidalle.model import DalleBart

    config = DalleBartConfig.load(model_dir).replace(
        **runtime_dtypes(dtype, jax.default_backend()))
    params = load_params(model_dir, config)
    ids, mask = pipeline.tokenizer.encode(prompt)
    tokens = jnp.asarray(np.concatenate([[BOS], codes[:-1]])[None], jnp.int32)
    logits = jax.jit(DalleBart(config).apply)({"params": params}, jnp.asarray(ids),
                                              jnp.asarray(mask), tokens)
    return np.asarray(logits[0, :, :pipeline.code_count], np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def measure(model_dir: Path, prompts) -> dict:
    """{dtype: {"codes", "images"}} for greedy tokens, and the fp32 pipeline for the logits."""
    from minidalle.pipeline import Pipeline

    runs = {}
    for dtype in DTYPES:
        pipeline = Pipeline.load(model_dir, dtype=dtype)
        codes = pipeline.generate_tokens(list(prompts), seed=0, n=1, top_k=1)
        runs[dtype] = {"codes": codes, "images": pipeline.decode_tokens(codes),
                       "pipeline": pipeline}
        print(f"  {dtype}: greedy tokens of {len(prompts)} prompts done "
              f"({pipeline.config.backend.name} backend)", flush=True)
    return runs


def compare(runs: dict, logits: dict, forced_images: dict, index: int, ours: str,
            theirs: str) -> dict:
    """One prompt's figures for dtype `ours` against `theirs`."""
    same = runs[ours]["codes"][index] == runs[theirs]["codes"][index]
    return {
        "same_tokens": float(same.mean()),
        "first_difference": int(np.argmin(same)) if not same.all() else len(same),
        "same_argmax": float(np.mean(logits[ours].argmax(-1) == logits[theirs].argmax(-1))),
        "logit_error": float(np.abs(logits[ours] - logits[theirs]).mean()),
        "logit_std": float(logits["fp32"].std()),
        "psnr": psnr(runs[ours]["images"][index], runs[theirs]["images"][index]),
        "forced_psnr": psnr(forced_images[ours], forced_images[theirs]),
    }


def unrelated_psnr(runs: dict) -> float:
    """Median PSNR between the bf16 greedy images of neighbouring prompts."""
    images = runs["bf16"]["images"]
    return statistics.median(psnr(images[i], images[i + 1]) for i in range(len(images) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=["tiny", "mini"], default="mini")
    parser.add_argument("--model", type=Path, help="a model folder instead of random weights")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), choices=range(1, 5))
    args = parser.parse_args()
    prompts = PROMPTS[:args.prompts]
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as scratch:
        model_dir = args.model or write_checkpoint(args.shape, Path(scratch))
        print(f"model: {args.model or f'random weights, {args.shape} shape'}", flush=True)
        runs = measure(model_dir, prompts)
        rows = {pair: [] for pair in (("int8", "bf16"), ("int8", "fp32"), ("bf16", "fp32"))}
        for index, prompt in enumerate(prompts):
            reference_codes = runs["fp32"]["codes"][index]
            logits = {dtype: teacher_forced_logits(model_dir, runs["fp32"]["pipeline"], dtype,
                                                   prompt, reference_codes)
                      for dtype in DTYPES}
            decode = runs["fp32"]["pipeline"].decode_tokens
            forced_images = {dtype: decode(logits[dtype].argmax(-1)[None].astype(np.int32))[0]
                             for dtype in DTYPES}
            for (ours, theirs), found in rows.items():
                found.append(compare(runs, logits, forced_images, index, ours, theirs))
        print(f"\n{'':14} {'same greedy':>11} {'first differing':>15} {'same argmax,':>12} "
              f"{'mean |logit':>11} {'(fp32 logit':>11} {'greedy':>8} {'same inputs':>12}")
        print(f"{'':14} {'tokens':>11} {'step':>15} {'same inputs':>12} {'error|':>11} "
              f"{'std)':>11} {'PSNR':>8} {'PSNR':>12}")
        for (ours, theirs), found in rows.items():
            medians = {key: statistics.median(row[key] for row in found) for key in found[0]}
            print(f"{ours} vs {theirs}:  {medians['same_tokens']:>11.1%} "
                  f"{medians['first_difference']:>15.0f} {medians['same_argmax']:>12.1%} "
                  f"{medians['logit_error']:>11.5f} {medians['logit_std']:>11.5f} "
                  f"{medians['psnr']:>5.1f} dB {medians['forced_psnr']:>9.1f} dB")
        if len(prompts) > 1:
            print(f"{'unrelated:':14} {'':>11} {'':>15} {'':>12} {'':>11} {'':>11} "
                  f"{unrelated_psnr(runs):>5.1f} dB")
        print(f"(medians over {len(prompts)} prompts, one greedy image each; unrelated: two "
              "prompts' bf16 images)")


if __name__ == "__main__":
    main()
