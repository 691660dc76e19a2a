"""The real worker against the real server: two processes on 127.0.0.1, a tiny checkpoint on disk.

A prompt submitted over HTTP comes back as a done job whose tiles are exactly what
Pipeline.generate makes for the same seed in this process, alone; batches change nothing.
"""

import io
import json
import sqlite3

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import WORKER_TOKEN
from tests.helpers import ServerProcess, WorkerProcess, wait_for

pytest.importorskip("jax")

HTTP_TIMEOUT_SECONDS = 10
JOB_TIMEOUT_SECONDS = 180


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN}).start()
    yield server
    server.stop()


@pytest.fixture
def worker_env(jax_cache_dir):
    return {"DALLEQ_JAX_CACHE": str(jax_cache_dir)}


def submit(url: str, **body) -> dict:
    response = requests.post(f"{url}/api/v1/jobs", json={"model": "tiny", **body},
                             timeout=HTTP_TIMEOUT_SECONDS)
    assert response.status_code == 201, response.text
    return response.json()


def get_job(url: str, job_id: str) -> dict:
    return requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT_SECONDS).json()


def wait_until_finished(url: str, job_id: str, timeout_seconds=JOB_TIMEOUT_SECONDS) -> dict:
    return wait_for(lambda: (job := get_job(url, job_id))["status"] in ("done", "failed",
                                                                          "canceled") and job,
                    timeout_seconds, message=f"job {job_id} to finish")


def tile_pixels(url: str, job: dict) -> list[np.ndarray]:
    tiles = []
    for image_url in job["image_urls"]:
        response = requests.get(url + image_url, timeout=HTTP_TIMEOUT_SECONDS)
        assert response.status_code == 200
        tiles.append(np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")))
    return tiles


def expected_tiles(pipeline, job: dict) -> list[np.ndarray]:
    params = {name: value for name, value in job["params"].items() if value is not None}
    images = pipeline.generate(job["prompt"], job["seed"], job["grid"] ** 2, **params)
    return [np.asarray(image) for image in images]


def result_meta(tmp_path, job_id: str) -> dict:
    """What the worker posted as `meta` (the API does not show it; the job page shows parts)."""
    connection = sqlite3.connect(tmp_path / "queue.db")
    try:
        (raw,) = connection.execute("SELECT result_meta FROM jobs WHERE id = ?",
                                    (job_id,)).fetchone()
    finally:
        connection.close()
    return json.loads(raw)


def test_a_prompt_comes_back_as_the_pipelines_images_and_reruns_repeat_them(
        tmp_path, server, tiny_checkpoint, tiny_pipeline, worker_env):
    worker = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint,
                           env=worker_env).start()
    try:
        worker.wait_until_ready()
        job = submit(server.url, prompt="an avocado armchair", seed=7, grid=2)
        done = wait_until_finished(server.url, job["id"])
        assert done["status"] == "done", done
        assert done["progress"] == 1.0 and done["attempts"] == 0
        tiles = tile_pixels(server.url, done)
        expected = expected_tiles(tiny_pipeline, done)
        assert len(tiles) == 4
        for got, want in zip(tiles, expected):
            np.testing.assert_array_equal(got, want)
        grid = Image.open(io.BytesIO(requests.get(server.url + done["grid_url"],
                                                  timeout=HTTP_TIMEOUT_SECONDS).content))
        assert grid.size == (512, 512)
        assert grid.text["prompt"] == "an avocado armchair" and grid.text["seed"] == "7"
        np.testing.assert_array_equal(np.asarray(grid.convert("RGB"))[256:, 256:], expected[3])
        meta = result_meta(tmp_path, job["id"])
        assert meta["random_weights"] is True and meta["model"] == tiny_checkpoint.name
        page = requests.get(f"{server.url}/jobs/{job['id']}", timeout=HTTP_TIMEOUT_SECONDS).text
        assert "random (a demo model" in page  # the job page labels random-weight images

        same = requests.post(f"{server.url}/api/v1/jobs/{job['id']}/rerun", json={"seed": "same"},
                             timeout=HTTP_TIMEOUT_SECONDS).json()
        fresh = requests.post(f"{server.url}/api/v1/jobs/{job['id']}/rerun", json={"seed": "new"},
                              timeout=HTTP_TIMEOUT_SECONDS).json()
        same_done = wait_until_finished(server.url, same["id"])
        fresh_done = wait_until_finished(server.url, fresh["id"])
        assert fresh_done["seed"] != 7
        for got, want in zip(tile_pixels(server.url, same_done), tiles):
            np.testing.assert_array_equal(got, want)
        assert not any(np.array_equal(got, want)
                       for got, want in zip(tile_pixels(server.url, fresh_done), tiles))
        assert f'job {job["id"]} done: prompt="an avocado armchair" seed=7 images=4' \
            in worker.output()
    finally:
        assert worker.stop() == 0, worker.output()


def test_a_batch_of_mixed_jobs_gives_each_job_its_own_images(
        tmp_path, server, tiny_checkpoint, tiny_pipeline, worker_env):
    jobs = [
        submit(server.url, prompt="a lighthouse at night", seed=1, grid=1),
        submit(server.url, prompt="a cat in a hat", seed=2, grid=2, temperature=0.7, top_k=5),
        submit(server.url, prompt="a lighthouse at night", seed=3, grid=1, top_p=0.9,
               condition_scale=3),
    ]
    worker = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint, env=worker_env,
                           extra_args=["--max-batch", "8", "--once"]).start()
    assert worker.process.wait(timeout=JOB_TIMEOUT_SECONDS) == 0, worker.output()
    worker.stop()
    for job in jobs:
        done = get_job(server.url, job["id"])
        assert done["status"] == "done", done
        for got, want in zip(tile_pixels(server.url, done), expected_tiles(tiny_pipeline, done)):
            np.testing.assert_array_equal(got, want)
        meta = result_meta(tmp_path, job["id"])
        assert meta["batch_jobs"] == 3 and meta["batch_images"] == 6
