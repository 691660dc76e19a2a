"""How `dalleq up` ends: Ctrl-C stops its worker before its server, and a hard kill of `up` takes
the worker with it (no orphan holding the model). Real processes and real signals (STYLE 32)."""

import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.helpers import REPO, wait_for

pytest.importorskip("jax")

START_SECONDS = 180  # the first start writes the demo model and compiles it
STOP_SECONDS = 60


@pytest.fixture
def up(tmp_path, jax_cache_dir):
    """`dalleq up` with the demo model, as the README runs it; yields (process, log path) once
    its worker is ready. Whatever is left of it, worker included, is killed afterwards."""
    log_path = tmp_path / "up.log"
    env = {**os.environ, "DALLEQ_MODELS": str(tmp_path / "models"),
           "DALLEQ_JAX_CACHE": str(jax_cache_dir), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dalleq", "up", "--port", "0", "--db",
             str(tmp_path / "queue.db"), "--data", str(tmp_path / "data")],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    workers = []
    try:
        wait_for(lambda: process.poll() is not None or re.search(
            r"worker local ready", log_path.read_text()), START_SECONDS, interval_seconds=0.1,
            message="the worker to be ready")
        assert process.poll() is None, log_path.read_text()
        workers.extend(psutil.Process(process.pid).children())
        yield process, log_path, workers
    finally:
        process.kill()
        process.wait()
        for worker in workers:
            try:
                worker.kill()
            except psutil.NoSuchProcess:
                pass


def is_gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_hard_kill_of_up_ends_its_worker_too(up):
    process, log_path, workers = up
    (worker,) = workers
    assert "worker" in worker.cmdline()
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_for(lambda: is_gone(worker), STOP_SECONDS, interval_seconds=0.1,
             message=f"the worker (pid {worker.pid}) to end with its parent")
    assert "the parent process is gone: stopping now" in log_path.read_text()


def test_ctrl_c_stops_the_idle_worker_first_then_the_server(up):
    process, log_path, workers = up
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=STOP_SECONDS) == 0, log_path.read_text()
    print(f"dalleq up stopped in {time.monotonic() - started:.2f} s")  # seen with pytest -s
    output = log_path.read_text()
    worker_stopped = output.index("worker local stopped")
    assert output.index("stopping: the worker first") < worker_stopped
    assert worker_stopped < output.index("the worker stopped (exit status 0)")
    assert worker_stopped < output.index("server closed")
    assert "Traceback" not in output
    assert all(is_gone(worker) for worker in workers)
