"""What batching buys and what live previews cost: jobs per minute for 8 queued 1x1 jobs with
`--max-batch 1` against `--max-batch 8` (previews off), and `--previews off` against `auto`.

    python3 bench/bench_worker.py                 # the tiny demo checkpoint, written to a temp folder
    python3 bench/bench_worker.py --shape mini    # random weights of the real mini shape (1.8 GB)
    python3 bench/bench_worker.py --model DIR     # any model folder (mini on a GPU box)
    python3 bench/bench_worker.py --preview-cost  # one 3x3 preview at the real shapes, no server

The real server and the real worker run as processes on 127.0.0.1, as in production. For each
setting a fresh worker starts. Each round queues a 4x4 "blocker" job and, while the worker is
busy with it, the 8 jobs, as happens when you queue ideas while the GPU is working; the clock
runs from the moment the blocker is done to the moment the last of the 8 is. The first round is
a warm-up that compiles the batch shapes (each is compiled once per process and kept on disk).
Medians are printed, then the ratios.

`--preview-cost` times, in this process, what `auto` weighs: one 3x3 preview (the partial VQGAN
decode of 9 tiles and the WebP) at the real VQGAN shape, and the seconds per step of a 3x3 job's
token loop at the real mini shape (random weights, a few chunks); then the interval auto picks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import ServerProcess, WorkerProcess

TOKEN = "bench-worker-token"
JOB_COUNT = 8
BATCH_WINDOW_MARGIN_SECONDS = 1.0  # the worker's batch window is 0.25 s
HTTP_TIMEOUT_SECONDS = 10


def submit_round(url: str, model_name: str, first_seed: int) -> list[str]:
    ids = []
    for index in range(JOB_COUNT):
        response = requests.post(f"{url}/api/v1/jobs", timeout=HTTP_TIMEOUT_SECONDS, json={
            "prompt": f"a lighthouse, study {index}", "seed": first_seed + index, "grid": 1,
            "model": model_name})
        response.raise_for_status()
        ids.append(response.json()["id"])
    return ids


def wait_done(url: str, ids: list[str], timeout_seconds: float = 1800) -> None:
    deadline = time.monotonic() + timeout_seconds
    pending = set(ids)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} jobs not done")
        for job_id in list(pending):
            job = requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT_SECONDS).json()
            if job["status"] == "done":
                pending.discard(job_id)
            elif job["status"] in ("failed", "canceled"):
                raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
        time.sleep(0.02)


def job_status(url: str, job_id: str) -> str:
    return requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT_SECONDS).json()["status"]


def timed_round(url: str, first_seed: int, blocker_grid: int) -> float:
    """Seconds from the blocker's end to the last of the 8 jobs' end."""
    response = requests.post(f"{url}/api/v1/jobs", timeout=HTTP_TIMEOUT_SECONDS, json={
        "prompt": "a blocker", "seed": first_seed, "grid": blocker_grid, "model": "bench"})
    response.raise_for_status()
    blocker = response.json()["id"]
    while job_status(url, blocker) == "queued":
        time.sleep(0.01)
    time.sleep(BATCH_WINDOW_MARGIN_SECONDS)  # past the batch window: the blocker runs alone
    ids = submit_round(url, "bench", first_seed + 1)
    if job_status(url, blocker) == "done":
        raise RuntimeError("the blocker finished before the jobs were queued: use a bigger model")
    wait_done(url, [blocker])
    started = time.perf_counter()
    wait_done(url, ids)
    return time.perf_counter() - started


def measure(folder: Path, server: ServerProcess, model_dir: Path, max_batch: int, previews: str,
            round_count: int, seed_base: int, blocker_grid: int) -> list[float]:
    """Seconds for each round of JOB_COUNT jobs after one warm-up round."""
    worker = WorkerProcess(folder, server.url, TOKEN, model_dir,
                           name=f"batch{max_batch}-previews-{previews}", model_name="bench",
                           extra_args=["--max-batch", str(max_batch), "--previews", previews])
    worker.start()
    try:
        worker.wait_until_ready(timeout_seconds=600)
        timed_round(server.url, seed_base, blocker_grid)  # warm-up: compiles the batch shapes
        return [timed_round(server.url, seed_base + 100 * (index + 1), blocker_grid)
                for index in range(round_count)]
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model folder (default: a fresh random one)")
    parser.add_argument("--shape", choices=["tiny", "mini"], default="tiny",
                        help="shape of the random model written when --model is not given")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per setting")
    parser.add_argument("--preview-cost", action="store_true",
                        help="time one 3x3 preview and a 3x3 job's steps at the real shapes, "
                             "and print the interval auto picks")
    parser.add_argument("--blocker-grid", type=int,
                        help="grid of the job that keeps the worker busy (default: 4 for the "
                             "tiny model, else 1)")
    args = parser.parse_args()
    if args.preview_cost:
        preview_cost()
        return
    blocker_grid = args.blocker_grid or (4 if args.model is None and args.shape == "tiny" else 1)
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as scratch:
        folder = Path(scratch)
        model_dir = args.model
        if model_dir is None:
            from minidalle.config import DalleBartConfig
            from minidalle.tiny import write_random_checkpoint, write_tiny_checkpoint
            from minidalle.vqgan import VQGANConfig

            if args.shape == "tiny":
                model_dir = write_tiny_checkpoint(folder / "tiny")
            else:  # the real mini shape and VQGAN (the text vocabulary keeps mini's size)
                model_dir = write_random_checkpoint(folder / "mini",
                                                    lambda _vocab: DalleBartConfig(), VQGANConfig())
        os.environ.setdefault("DALLEQ_JAX_CACHE", str(folder / "jax-cache"))
        server = ServerProcess(folder, env={"DALLEQ_WORKER_TOKEN": TOKEN}).start()
        try:
            results = {}
            for index, (max_batch, previews) in enumerate(SETTINGS):
                rounds = measure(folder, server, model_dir, max_batch, previews, args.rounds,
                                 seed_base=100_000 * (index + 1), blocker_grid=blocker_grid)
                results[max_batch, previews] = statistics.median(rounds)
                print(f"--max-batch {max_batch} --previews {previews}: {JOB_COUNT} jobs in "
                      f"{', '.join(f'{s:.2f}' for s in rounds)} s → median "
                      f"{60 * JOB_COUNT / results[max_batch, previews]:.1f} jobs/min", flush=True)
        finally:
            server.stop()
    print(f"batching gain: {results[1, 'off'] / results[JOB_COUNT, 'off']:.2f}x the jobs per "
          f"minute with --max-batch {JOB_COUNT} ({model_dir.name}, {os.cpu_count()} cores)")
    print(f"previews auto: {results[1, 'off'] / results[1, 'auto']:.2f}x the jobs per minute of "
          f"previews off (--max-batch 1)")


SETTINGS = [(1, "off"), (JOB_COUNT, "off"), (1, "auto")]  # (--max-batch, --previews)
PREVIEW_GRID_TILES = 9
TIMED_CHUNKS = 3  # of the 3x3 token loop at the mini shape, after one that compiles


def preview_cost() -> None:
    """Prints one 3x3 preview's cost, a 3x3 job's seconds per step, and auto's interval."""
    import numpy as np

    from minidalle.config import DalleBartConfig
    from minidalle.pipeline import Pipeline
    from minidalle.random_weights import random_params, random_vqgan_params
    from minidalle.vqgan import VQGANConfig
    from worker.previews import PreviewPacer, PreviewSetting, preview_webp

    config, vqgan_config = DalleBartConfig(), VQGANConfig()
    pipeline = Pipeline.from_params(config, random_params(config, 0), vqgan_config,
                                    random_vqgan_params(vqgan_config, 0))
    codes = np.random.default_rng(0).integers(0, vqgan_config.n_embed, (PREVIEW_GRID_TILES, 256))
    preview_webp(pipeline.decode_partial(codes[:1], 128))  # compiles the decode
    preview_seconds = []
    for steps_done in (64, 128, 192):
        started = time.perf_counter()
        webp = preview_webp(pipeline.decode_partial(codes, steps_done))
        preview_seconds.append(time.perf_counter() - started)
    preview = statistics.median(preview_seconds)
    print(f"one 3x3 preview at the real VQGAN shape: median {preview:.2f} s, least "
          f"{min(preview_seconds):.2f} s ({min(preview_seconds) / PREVIEW_GRID_TILES:.2f} s a tile), "
          f"{len(webp)} bytes", flush=True)

    chunk_ends = []

    def time_chunks(steps_done: int, _steps_total: int) -> None:
        chunk_ends.append((time.perf_counter(), steps_done))
        if len(chunk_ends) > TIMED_CHUNKS:
            raise StopIteration  # enough steps timed

    try:
        pipeline.generate_tokens([0, 2], seed=0, n=PREVIEW_GRID_TILES, on_progress=time_chunks)
    except StopIteration:
        pass
    (first_time, first_steps), (last_time, last_steps) = chunk_ends[0], chunk_ends[-1]
    seconds_per_step = (last_time - first_time) / (last_steps - first_steps)
    pacer = PreviewPacer(PreviewSetting.parse("auto"))
    for seconds in preview_seconds:  # what the worker's own previews would have taught it
        pacer.made(0, seconds, PREVIEW_GRID_TILES)
    pacer.seconds_per_step = seconds_per_step
    interval = pacer.interval_steps(PREVIEW_GRID_TILES)
    made_at = []
    for steps_done in range(16, 256, 16):  # a job after the first: the cost is known
        if steps_done - (made_at[-1] if made_at else 0) >= interval:
            made_at.append(steps_done)
    print(f"a 3x3 job at the real mini shape: {seconds_per_step:.3f} s a step "
          f"({256 * seconds_per_step:.0f} s for 256 steps); auto: a preview every {interval} "
          f"steps, so at steps {made_at or 'none'}: {len(made_at) * min(preview_seconds):.1f} s "
          f"of previews "
          f"per job ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
