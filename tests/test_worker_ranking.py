"""The worker ranks each job's tiles when given a ranker (issue 17, "CLIP ranking"): the real
worker loop and tiny pipeline against the real server, with a small ranker whose answer is known
(mean brightness) in place of CLIP, so the scores can be checked against the served tiles."""

import numpy as np
import pytest

from tests.conftest import WORKER_TOKEN
from tests.helpers import ServerProcess
from tests.test_worker import get_job, result_meta, submit, tile_pixels

pytest.importorskip("jax")


class BrightnessRanker:
    """Scores an image by its mean brightness: a known right answer for each tile."""

    def __init__(self):
        self.prompts = []

    def scores(self, prompt, images):
        self.prompts.append(prompt)
        assert all(image.dtype == np.uint8 and image.shape[2] == 3 for image in images)
        return [float(image.mean()) for image in images]


class BrokenRanker:
    def __init__(self, answer=None):
        self.answer = answer

    def scores(self, prompt, images):
        if self.answer is None:
            raise RuntimeError("CLIP fell over")
        return self.answer


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN}).start()
    yield server
    server.stop()


def serve_once(server, tmp_path, pipeline, ranker, max_batch=2):
    """One batch of what is queued, by an in-process worker with this ranker."""
    from worker.runner import ModelInfo, Worker, WorkerOptions

    options = WorkerOptions(server_url=server.url, token=WORKER_TOKEN, name="ranking",
                            model_name="tiny", spool_dir=tmp_path / "spool", max_batch=max_batch,
                            batch_window_seconds=0.0, is_once=True)
    worker = Worker(options, pipeline, ModelInfo("tiny", "fp32", "cpu", True), ranker=ranker)
    assert worker.run() == 0


def test_the_worker_posts_each_tiles_score_and_the_job_gets_the_best(
        tmp_path, server, tiny_pipeline):
    jobs = [submit(server.url, prompt="a red fox", seed=3, grid=2),
            submit(server.url, prompt="a blue lake", seed=4, grid=1)]
    ranker = BrightnessRanker()
    serve_once(server, tmp_path, tiny_pipeline, ranker)
    assert sorted(ranker.prompts) == ["a blue lake", "a red fox"]
    for submitted in jobs:
        job = get_job(server.url, submitted["id"])
        assert job["status"] == "done"
        brightness = [float(tile.mean()) for tile in tile_pixels(server.url, job)]
        assert job["scores"] == pytest.approx(brightness, abs=1e-9)
        assert job["best_image"] == int(np.argmax(brightness))
        assert result_meta(tmp_path, job["id"])["rank_seconds"] >= 0


@pytest.mark.parametrize("ranker", [
    pytest.param(BrokenRanker(), id="raises"),
    pytest.param(BrokenRanker([1.0]), id="too-few-scores"),
    pytest.param(BrokenRanker([1.0, float("nan"), 2.0, 3.0]), id="not-finite"),
    pytest.param(None, id="no-ranker"),
])
def test_a_job_whose_ranking_fails_is_done_without_scores(tmp_path, server, tiny_pipeline, ranker):
    submitted = submit(server.url, prompt="a quiet harbour", seed=5, grid=2)
    serve_once(server, tmp_path, tiny_pipeline, ranker)
    job = get_job(server.url, submitted["id"])
    assert job["status"] == "done" and len(job["image_urls"]) == 4
    assert job["scores"] is None and job["best_image"] is None
    assert "scores" not in result_meta(tmp_path, job["id"])
