"""What batching buys: jobs per minute for 8 queued 1x1 jobs, `--max-batch 1` against `--max-batch 8`.

    python3 bench/bench_worker.py                 # the tiny demo checkpoint, written to a temp folder
    python3 bench/bench_worker.py --shape mini    # random weights of the real mini shape (1.8 GB)
    python3 bench/bench_worker.py --model DIR     # any model folder (mini on a GPU box)

The real server and the real worker run as processes on 127.0.0.1, as in production. For each
setting a fresh worker starts. Each round queues a 4x4 "blocker" job and, while the worker is
busy with it, the 8 jobs, as happens when you queue ideas while the GPU is working; the clock
runs from the moment the blocker is done to the moment the last of the 8 is. The first round is
a warm-up that compiles the batch shapes (each is compiled once per process and kept on disk).
Medians are printed, then the ratio.
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


def measure(folder: Path, server: ServerProcess, model_dir: Path, max_batch: int,
            round_count: int, seed_base: int, blocker_grid: int) -> list[float]:
    """Seconds for each round of JOB_COUNT jobs after one warm-up round."""
    worker = WorkerProcess(folder, server.url, TOKEN, model_dir, name=f"batch{max_batch}",
                           model_name="bench", extra_args=["--max-batch", str(max_batch)])
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
    parser.add_argument("--blocker-grid", type=int,
                        help="grid of the job that keeps the worker busy (default: 4 for the "
                             "tiny model, else 1)")
    args = parser.parse_args()
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
            for max_batch in (1, JOB_COUNT):
                rounds = measure(folder, server, model_dir, max_batch, args.rounds,
                                 seed_base=100_000 * max_batch, blocker_grid=blocker_grid)
                results[max_batch] = statistics.median(rounds)
                print(f"--max-batch {max_batch}: {JOB_COUNT} jobs in "
                      f"{', '.join(f'{s:.2f}' for s in rounds)} s → median "
                      f"{60 * JOB_COUNT / results[max_batch]:.1f} jobs/min", flush=True)
        finally:
            server.stop()
    print(f"batching gain: {results[1] / results[JOB_COUNT]:.2f}x the jobs per minute "
          f"with --max-batch {JOB_COUNT} ({model_dir.name}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
