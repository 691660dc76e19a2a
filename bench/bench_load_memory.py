"""How much host memory loading a model takes, against the size of the weights it ends with.

    python3 bench/bench_load_memory.py --shape mini            # a minute
    python3 bench/bench_load_memory.py --shape mega --checkpoint /tmp/mega --keep   # ~10.4 GB file

Issue 19: loading Mega must not need more host RAM than about the final weights plus one layer.
Writes a random checkpoint of the real shape in the published format (fp32, written tensor by
tensor, one layer slice at a time, so writing Mega's 10.4 GB never holds them), then loads it in a
fresh subprocess per configuration, as `Pipeline.load` does up to weights ready to generate
(`checkpoint.load_params`, then `Pipeline.ready_weights`: unscanned, prepared for the backend,
`jax.device_put`), and prints peak RSS, the final weights' size, their ratio and seconds. Loaders:
`streamed` (today's `load_params`) and `whole` (`load_params_whole`: flax restores the whole file
first, the former loader, the baseline). A configuration whose estimated peak does not fit in the
memory available now is skipped with a note, so a shared machine is never pushed into swap or OOM.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_pipeline import SHAPES  # the same mini and mega shapes

GB = 1e9
LOADERS = ("whole", "streamed")
SEED = 0


def write_random_checkpoint_streamed(folder: Path, shape: str) -> Path:
    """config.json and a random fp32 flax_model.msgpack of the shape, written stream-wise."""
    import msgpack
    import numpy as np
    from flax.traverse_util import flatten_dict, unflatten_dict

    from minidalle.checkpoint import MODEL_FILE, abstract_params
    from minidalle.config import CONFIG_FILE, DalleBartConfig

    config = DalleBartConfig(**SHAPES[shape])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    shapes = unflatten_dict({key: spec.shape for key, spec in
                             flatten_dict(abstract_params(config)).items()})
    packer = msgpack.Packer(use_bin_type=True)
    rng = np.random.default_rng(SEED)

    def write(file, name: str, tree) -> None:
        if isinstance(tree, dict):
            file.write(packer.pack_map_header(len(tree)))
            for key, subtree in tree.items():
                file.write(packer.pack(key))
                write(file, key, subtree)
            return
        # flax's array: ext 1 holding msgpack [shape, "float32", bin of the raw bytes]
        byte_count = int(np.prod(tree)) * 4
        header = (packer.pack_array_header(3) + packer.pack(list(tree)) + packer.pack("float32")
                  + b"\xc6" + byte_count.to_bytes(4, "big"))  # bin 32
        file.write(b"\xc9" + (len(header) + byte_count).to_bytes(4, "big") + b"\x01" + header)
        slices = tree[0] if len(tree) == 3 else 1  # stacked layers: one layer at a time
        for _ in range(slices):
            slice_shape = tree[1:] if len(tree) == 3 else tree
            if name in ("kernel", "embedding"):
                values = rng.standard_normal(slice_shape, np.float32) * np.float32(config.init_std)
            else:
                values = np.full(slice_shape, name == "scale", np.float32)
            file.write(values.tobytes())

    with open(folder / MODEL_FILE, "wb") as file:
        write(file, "", shapes)
    return folder


def load_once(folder: Path, loader: str, dtype: str, backend: str) -> dict:
    """In this (fresh) process: load, ready the weights, and report memory and time."""
    import jax
    import psutil

    from minidalle.checkpoint import load_params, load_params_whole
    from minidalle.config import DalleBartConfig, runtime_dtypes
    from minidalle.pipeline import Pipeline

    config = DalleBartConfig.load(folder).replace(**runtime_dtypes(dtype, jax.default_backend()))
    jax.device_put(0).block_until_ready()  # the runtime's own memory, before any weight
    baseline_bytes = psutil.Process().memory_info().rss
    started = time.perf_counter()
    params = (load_params if loader == "streamed" else load_params_whole)(folder, config)
    load_seconds = time.perf_counter() - started
    final_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(params))
    loaded_peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _, weights = Pipeline.ready_weights(config, params, backend)
    jax.block_until_ready(weights)
    return {"loader": loader, "dtype": dtype, "backend": backend,
            "baseline_gb": baseline_bytes / GB, "final_gb": final_bytes / GB,
            "loaded_peak_gb": loaded_peak_bytes / GB,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB,
            "load_seconds": load_seconds, "seconds": time.perf_counter() - started}


def estimated_peak_gb(file_gb: float, loader: str, dtype: str) -> float:
    """A generous guess of a configuration's peak on either backend, to skip what cannot fit."""
    final_gb = file_gb / (2 if dtype == "bf16" else 3.5 if dtype == "int8" else 1)
    return (2 * file_gb if loader == "whole" else 0.1 * file_gb) + 1.3 * final_gb + 1


def run_configuration(folder: Path, loader: str, dtype: str, backend: str) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", loader, dtype, backend, "--checkpoint", str(folder)],
        capture_output=True, text=True, timeout=3600, cwd=REPO, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{loader} {dtype} {backend} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mini")
    parser.add_argument("--checkpoint", type=Path,
                        help="folder for the random checkpoint: reused if it has one")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint at the end")
    parser.add_argument("--dtype", nargs="+", default=["bf16", "int8"],
                        choices=["fp32", "bf16", "int8"])
    parser.add_argument("--backend", nargs="+", default=["xla", "cpu"], choices=["xla", "cpu"])
    parser.add_argument("--loader", nargs="+", default=list(LOADERS), choices=LOADERS)
    parser.add_argument("--child", nargs=3, metavar=("LOADER", "DTYPE", "BACKEND"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(load_once(args.checkpoint, *args.child)))
        return

    import psutil

    from minidalle.checkpoint import MODEL_FILE

    folder = args.checkpoint or Path(tempfile.mkdtemp(prefix=f"load-{args.shape}-"))
    model_file = folder / MODEL_FILE
    if not model_file.exists():
        started = time.perf_counter()
        write_random_checkpoint_streamed(folder, args.shape)
        print(f"wrote {model_file} in {time.perf_counter() - started:.0f} s", flush=True)
    file_gb = model_file.stat().st_size / GB
    print(f"{args.shape}: {file_gb:.2f} GB fp32 checkpoint, "
          f"{psutil.virtual_memory().total / GB:.1f} GB RAM")
    print(f"{'loader':>9} {'dtype':>5} {'backend':>7} {'final GB':>8} {'peak GB':>8} "
          f"{'peak/final':>10} {'(- runtime)':>11} {'after load':>10} {'load s':>6} {'ready s':>7}")
    try:
        for dtype in args.dtype:
            for backend in args.backend:
                for loader in args.loader:
                    need_gb = estimated_peak_gb(file_gb, loader, dtype)
                    available_gb = psutil.virtual_memory().available / GB
                    if need_gb > 0.9 * available_gb:
                        print(f"{loader:>9} {dtype:>5} {backend:>7}  skipped: may need "
                              f"{need_gb:.1f} GB, {available_gb:.1f} GB available", flush=True)
                        continue
                    r = run_configuration(folder, loader, dtype, backend)
                    print(f"{loader:>9} {dtype:>5} {backend:>7} {r['final_gb']:8.2f} "
                          f"{r['peak_gb']:8.2f} {r['peak_gb'] / r['final_gb']:10.2f} "
                          f"{(r['peak_gb'] - r['baseline_gb']) / r['final_gb']:11.2f} "
                          f"{r['loaded_peak_gb']:10.2f} {r['load_seconds']:6.1f} "
                          f"{r['seconds']:7.1f}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(folder) if args.checkpoint is None else model_file.unlink()


if __name__ == "__main__":
    main()
