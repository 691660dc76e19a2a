"""A stop while the worker loads its model ends it at once: it holds no job yet, so there is
nothing to finish. The signal is sent when the worker logs that loading started (no sleeps); no
server is needed, as the worker does not reach for one before its model is ready."""

import signal

import pytest

from tests.helpers import WorkerProcess, free_port

pytest.importorskip("jax")

STOP_SECONDS = 10  # it takes tens of milliseconds; the margin is for a loaded CI machine


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_while_loading_exits_at_once_and_says_so(tmp_path, tiny_checkpoint, jax_cache_dir,
                                                        sig):
    worker = WorkerProcess(tmp_path, f"http://127.0.0.1:{free_port()}", "token", tiny_checkpoint,
                           env={"DALLEQ_JAX_CACHE": str(jax_cache_dir)}).start()
    try:
        worker.wait_for_log(r"loading the model .* \(Ctrl-C stops at once")
        worker.process.send_signal(sig)
        status = worker.process.wait(timeout=STOP_SECONDS)
    finally:
        worker.stop(signal.SIGKILL)
    output = worker.output()
    assert status == -sig, output  # ended by the signal, as a process that holds nothing is
    assert f"{sig.name} while loading the model: stopping now (no job was claimed)" in output
    assert "worker w1 ready" not in output and "Traceback" not in output  # it never got there
