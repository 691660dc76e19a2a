"""A worker asked to stop while its server is unreachable: it keeps trying for the stop's retry
budget, then exits 0, its result left in the spool and posted at the next start (issue 16,
item 15). Real processes and real signals (STYLE 32)."""

import signal

import pytest

from tests.conftest import WORKER_TOKEN
from tests.helpers import ServerProcess, WorkerProcess
from tests.test_worker import JOB_TIMEOUT_SECONDS, submit, wait_until_finished
from tests.test_worker_faults import wait_until_running

pytest.importorskip("jax")

STOP_RETRY_SECONDS = 2  # the default is 30; the behaviour is the same, the test shorter


def test_a_stopping_worker_whose_server_is_gone_exits_and_keeps_the_result_for_next_time(
        tmp_path, tiny_checkpoint, jax_cache_dir):
    worker_env = {"DALLEQ_JAX_CACHE": str(jax_cache_dir)}
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN}).start()
    worker = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint, env=worker_env,
                           extra_args=["--stop-retry", str(STOP_RETRY_SECONDS)]).start()
    try:
        worker.wait_until_ready()
        job = submit(server.url, prompt="a harbour at dawn", seed=5, grid=4)
        wait_until_running(server.url, job["id"])
        server.stop()
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=JOB_TIMEOUT_SECONDS) == 0, worker.output()
    finally:
        worker.stop()
        server.stop()
    assert (f"job {job['id']}: the server is unreachable; its result stays in the spool"
            in worker.output())
    spooled = tmp_path / "spool-w1" / job["id"]
    expected = {"claim.json", "meta.json", "grid.png", *(f"image_{i}.png" for i in range(16))}
    assert {path.name for path in spooled.iterdir()} == expected

    server.start()  # same port, same database
    again = WorkerProcess(tmp_path, server.url, WORKER_TOKEN, tiny_checkpoint,
                          env=worker_env).start()  # same name, so the same spool
    try:
        done = wait_until_finished(server.url, job["id"])
        assert done["status"] == "done" and done["attempts"] == 0, done
        assert not spooled.exists()
    finally:
        again.stop()
        server.stop()
