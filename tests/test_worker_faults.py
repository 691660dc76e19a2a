"""The worker under faults: killed mid-job, the server gone mid-job, a model that raises, a cancel.

Real processes and real signals (STYLE 32); the one in-process worker wraps the real pipeline to
make one prompt raise, since no valid job makes the real model fail on a CPU.
"""

import os
import signal
import threading

import numpy as np
import pytest
import requests

from tests.conftest import WORKER_TOKEN
from tests.helpers import ServerProcess, WorkerProcess, wait_for
from tests.test_worker import (
    JOB_TIMEOUT_SECONDS,
    expected_tiles,
    get_job,
    submit,
    tile_pixels,
    wait_until_finished,
)

pytest.importorskip("jax")

LEASE_SECONDS = 5  # the server's minimum: a killed worker's job comes back quickly


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN},
                           extra_args=["--lease-seconds", str(LEASE_SECONDS)]).start()
    yield server
    server.stop()


@pytest.fixture
def worker_env(jax_cache_dir):
    return {"DALLEQ_JAX_CACHE": str(jax_cache_dir)}


def wait_until_running(url: str, job_id: str) -> dict:
    return wait_for(lambda: (job := get_job(url, job_id))["status"] == "running" and job,
                    JOB_TIMEOUT_SECONDS, interval_seconds=0.02, message=f"job {job_id} to run")


def test_a_killed_worker_s_job_is_finished_once_by_another(
        tmp_path, server, tiny_checkpoint, tiny_pipeline, worker_env):
    first = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint, name="first",
                          env=worker_env).start()
    second = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint, name="second",
                           env=worker_env)
    try:
        first.wait_until_ready()
        job = submit(server.url, prompt="a red fox in the snow", seed=11, grid=4)
        wait_until_running(server.url, job["id"])
        first.stop(signal.SIGKILL)
        second.start()
        done = wait_until_finished(server.url, job["id"])
        assert done["status"] == "done", done
        assert done["attempts"] == 1  # the killed attempt expired and counted
        for got, want in zip(tile_pixels(server.url, done), expected_tiles(tiny_pipeline, done)):
            np.testing.assert_array_equal(got, want)
        assert second.output().count(f"job {job['id']} done") == 1
        assert f"job {job['id']} claimed by second" in server.output()
    finally:
        first.stop()
        second.stop()


def test_the_result_lands_when_the_server_comes_back(
        tmp_path, tiny_checkpoint, tiny_pipeline, worker_env):
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN}).start()
    worker = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint,
                           env=worker_env).start()
    try:
        worker.wait_until_ready()
        job = submit(server.url, prompt="a harbour at dawn", seed=5, grid=4)
        wait_until_running(server.url, job["id"])
        server.stop()
        worker.wait_for_log("server unavailable, retrying", JOB_TIMEOUT_SECONDS)
        server.start()  # same port, same database
        done = wait_until_finished(server.url, job["id"])
        assert done["status"] == "done" and done["attempts"] == 0, done
        for got, want in zip(tile_pixels(server.url, done), expected_tiles(tiny_pipeline, done)):
            np.testing.assert_array_equal(got, want)
        assert not list((tmp_path / "spool-w1").iterdir())  # delivered, so nothing kept
    finally:
        worker.stop()
        server.stop()


class ExplodingPipeline:
    """The real pipeline, except that a prompt with "explode" in it raises inside generation."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def generate_batch(self, requests, on_progress=None):
        for request in requests:
            if "explode" in request.prompt:
                raise RuntimeError("the model exploded on purpose")
        return self.pipeline.generate_batch(requests, on_progress)

    def decode_tokens(self, tokens):
        return self.pipeline.decode_tokens(tokens)


def test_a_job_that_raises_fails_with_its_message_and_the_rest_go_on(
        tmp_path, server, tiny_pipeline):
    from worker.runner import ModelInfo, Worker, WorkerOptions
    from worker.stopping import StopRequests

    bad = submit(server.url, prompt="please explode", seed=1, grid=1)
    good = submit(server.url, prompt="a quiet lake", seed=2, grid=1)
    options = WorkerOptions(server_url=server.url, token=WORKER_TOKEN, name="in-process",
                            model_name="tiny", spool_dir=tmp_path / "spool", max_batch=2,
                            claim_wait_seconds=1.0)
    stop = StopRequests()
    worker = Worker(options, ExplodingPipeline(tiny_pipeline),
                    ModelInfo("tiny", "fp32", "cpu", True), stop=stop)
    exit_codes = []
    thread = threading.Thread(target=lambda: exit_codes.append(worker.run()))
    thread.start()
    try:
        failed = wait_until_finished(server.url, bad["id"])
        done = wait_until_finished(server.url, good["id"])
        later = submit(server.url, prompt="a quiet lake at night", seed=3, grid=1)
        later_done = wait_until_finished(server.url, later["id"])
    finally:
        stop.request("test over")
        thread.join(timeout=60)
    assert failed["status"] == "failed"  # not retryable: the same job would raise again
    assert failed["error"] == "RuntimeError: the model exploded on purpose"
    assert failed["attempts"] == 1
    assert done["status"] == "done" and later_done["status"] == "done"
    assert exit_codes == [0]


def test_a_sigterm_as_the_server_hands_out_a_job_finishes_that_job(
        tmp_path, server, tiny_pipeline):
    """The race a real SIGTERM can hit: the server has leased the job, and the signal lands
    before the worker reads the answer. The job must still be generated, not left running."""
    from worker.client import QueueClient
    from worker.runner import ModelInfo, Worker, WorkerOptions
    from worker.stopping import StopRequests

    class SignalAfterClaimClient(QueueClient):
        def claim(self, *args, **kwargs):
            claims = super().claim(*args, **kwargs)
            if claims:
                os.kill(os.getpid(), signal.SIGTERM)  # handled on the main thread, mid-claim
                # The claim runs on a thread of its own: hold the answer until the handler has run.
                assert stop.event.wait(JOB_TIMEOUT_SECONDS), "the SIGTERM handler never ran"
            return claims

    job = submit(server.url, prompt="a lighthouse at dusk", seed=5, grid=1)
    options = WorkerOptions(server_url=server.url, token=WORKER_TOKEN, name="in-process",
                            model_name="tiny", spool_dir=tmp_path / "spool", max_batch=1,
                            claim_wait_seconds=1.0)
    stop = StopRequests()
    worker = Worker(options, tiny_pipeline, ModelInfo("tiny", "fp32", "cpu", True), stop=stop,
                    make_client=lambda: SignalAfterClaimClient(server.url, WORKER_TOKEN))
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    stop.install()  # the worker runs on this, the main thread, as `dalleq worker` does
    try:
        assert worker.run() == 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert stop.signal_count == 1
    assert get_job(server.url, job["id"])["status"] == "done"


def test_a_cancel_during_generation_stops_it(tmp_path, server, tiny_checkpoint, worker_env):
    worker = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint,
                           env=worker_env).start()
    try:
        worker.wait_until_ready()
        job = submit(server.url, prompt="a very long hallway", seed=9, grid=4)
        wait_until_running(server.url, job["id"])
        response = requests.post(f"{server.url}/api/v1/jobs/{job['id']}/cancel", timeout=10)
        assert response.status_code == 200
        finished = wait_until_finished(server.url, job["id"])
        assert finished["status"] == "canceled", finished
        assert finished["image_urls"] == []
        worker.wait_for_log(f"job {job['id']} canceled")
        assert f"job {job['id']} done" not in worker.output()
        after = submit(server.url, prompt="a short hallway", seed=10, grid=1)
        assert wait_until_finished(server.url, after["id"])["status"] == "done"
    finally:
        worker.stop()


def test_sigterm_lets_the_batch_finish_and_a_second_hands_the_lease_back(
        tmp_path, server, tiny_checkpoint, worker_env):
    worker = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint,
                           env=worker_env).start()
    try:
        worker.wait_until_ready()
        job = submit(server.url, prompt="a slow sunset", seed=21, grid=4)
        wait_until_running(server.url, job["id"])
        assert worker.stop(signal.SIGTERM, timeout_seconds=JOB_TIMEOUT_SECONDS) == 0
        assert get_job(server.url, job["id"])["status"] == "done"
        assert "SIGTERM: finishing the current batch" in worker.output()
    finally:
        worker.stop()

    again = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint, name="w2",
                          env=worker_env).start()
    try:
        again.wait_until_ready()
        job = submit(server.url, prompt="a slower sunset", seed=22, grid=4)
        wait_until_running(server.url, job["id"])
        again.process.send_signal(signal.SIGINT)
        again.wait_for_log("SIGINT: finishing")
        again.process.send_signal(signal.SIGINT)
        assert again.process.wait(timeout=JOB_TIMEOUT_SECONDS) == 0, again.output()
        handed_back = get_job(server.url, job["id"])
        assert handed_back["status"] == "queued" and handed_back["attempts"] == 1, handed_back
        assert handed_back["error"] == "the worker was stopped"
        assert f"job {job['id']}: handing the lease back" in again.output()
    finally:
        again.stop()


class PausingPipeline:
    """The real pipeline, held at its first progress short of the end until the test lets it go."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.paused = threading.Event()
        self.release = threading.Event()

    def generate_batch(self, requests, on_progress=None):
        def hold_once(steps_done, steps_total):
            on_progress(steps_done, steps_total)
            if steps_done < steps_total and not self.paused.is_set():
                self.paused.set()
                assert self.release.wait(JOB_TIMEOUT_SECONDS), "the test never released the model"
        return self.pipeline.generate_batch(requests, hold_once)

    def decode_tokens(self, tokens):
        return self.pipeline.decode_tokens(tokens)


def test_the_real_model_s_progress_reaches_the_server_while_it_runs(tmp_path, server, tiny_pipeline):
    from worker.runner import ModelInfo, Worker, WorkerOptions
    from worker.stopping import StopRequests

    job = submit(server.url, prompt="a kite over the dunes", seed=4, grid=1)
    options = WorkerOptions(server_url=server.url, token=WORKER_TOKEN, name="in-process",
                            model_name="tiny", spool_dir=tmp_path / "spool",
                            claim_wait_seconds=1.0)
    stop = StopRequests()
    pipeline = PausingPipeline(tiny_pipeline)
    worker = Worker(options, pipeline, ModelInfo("tiny", "fp32", "cpu", True), stop=stop)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert pipeline.paused.wait(JOB_TIMEOUT_SECONDS)
        held = wait_for(lambda: 0 < (seen := get_job(server.url, job["id"]))["progress"] < 1
                        and seen, JOB_TIMEOUT_SECONDS, message="progress between 0 and 1")
        pipeline.release.set()
        done = wait_until_finished(server.url, job["id"])
    finally:
        pipeline.release.set()
        stop.request("test over")
        thread.join(timeout=60)
    assert held["status"] == "running"
    assert done["status"] == "done" and done["progress"] == 1.0



def test_a_cancel_that_comes_just_before_the_upload_wins(tmp_path, server, tiny_pipeline, caplog):
    """The cancel lands after the worker's last heartbeat, while its result is on the way: the
    server ends the job canceled without images, and the worker does not call it done."""
    from worker.runner import ModelInfo, Worker, WorkerOptions
    from worker.stopping import StopRequests

    job = submit(server.url, prompt="a boat in fog", seed=6, grid=1)
    options = WorkerOptions(server_url=server.url, token=WORKER_TOKEN, name="in-process",
                            model_name="tiny", spool_dir=tmp_path / "spool",
                            claim_wait_seconds=1.0)
    stop = StopRequests()
    worker = Worker(options, tiny_pipeline, ModelInfo("tiny", "fp32", "cpu", True), stop=stop)
    post_result = worker.client.post_result

    def cancel_then_post(job_id, *args):
        asked = requests.post(f"{server.url}/api/v1/jobs/{job_id}/cancel", timeout=30).json()
        assert asked["status"] == "running"  # asked for; the result decides
        return post_result(job_id, *args)

    worker.client.post_result = cancel_then_post
    caplog.set_level("INFO", logger="worker")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        ended = wait_until_finished(server.url, job["id"])
        wait_for(lambda: "dropped its images" in caplog.text, 60, message="the worker's log line")
    finally:
        stop.request("test over")
        thread.join(timeout=60)
    assert ended["status"] == "canceled" and ended["image_urls"] == [], ended
    assert f"job {job['id']} done" not in caplog.text
