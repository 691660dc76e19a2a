"""`dalleq up`: the server and a local worker on this machine, the whole loop in one command.

The server runs in this process; the worker runs as a child process (`dalleq worker`), so a
model crash or an out-of-memory kill never takes the queue down: the child is restarted with
backoff and its job's lease simply expires. The child gets its own session, so a Ctrl-C in the
terminal reaches only us, and we send it exactly one SIGTERM: it finishes its batch, then exits.

With no model given, the worker runs the demo checkpoint: a tiny model with random weights,
written once by `dalleq weights tiny` into the models cache, and every page says so.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .config import Settings
from .errors import StartupError

log = logging.getLogger(__name__)

DEMO_MODEL_NAME = "demo"
DEMO_NOTICE = ("Demo model with random weights: its images are noise, not pictures of your "
               "prompt. See the README for real weights.")
TOKEN_FILE = ".worker_token"
WORKER_STOP_SECONDS = 60.0  # the worker's current batch may finish within this
RESTART_FIRST_SECONDS, RESTART_MAX_SECONDS = 1.0, 60.0


def worker_token(settings: Settings) -> str:
    """The configured token, or one made once and kept in the data folder (mode 600)."""
    if settings.worker_token:
        return settings.worker_token
    path = Path(settings.data_dir) / TOKEN_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token


def demo_model_folder(cache: Path | None) -> Path:
    """The demo checkpoint, written on first use (a few seconds, no download)."""
    from minidalle import weights as hub
    from minidalle.tiny import write_tiny_checkpoint

    folder = (Path(cache) if cache else hub.default_cache()) / DEMO_MODEL_NAME
    if not (folder / "config.json").is_file():
        log.info("writing the demo model (random weights) to %s", folder)
        write_tiny_checkpoint(folder)
    return folder


def client_host(host: str) -> str:
    """Where a worker on this machine reaches a server bound to `host`."""
    from .serving import url_host

    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else url_host(host)


class WorkerProcess:
    """Runs `dalleq worker` as a child and restarts it when it dies, until stop()."""

    def __init__(self, arguments: list[str], token: str):
        self.command = [sys.executable, "-m", "server", "worker", *arguments]
        self.env = dict(os.environ, DALLEQ_WORKER_TOKEN=token)
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._supervise, name="worker-supervisor",
                                       daemon=True)

    def start(self) -> WorkerProcess:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            log.info("stopping the worker (it finishes its current batch first)")
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=WORKER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.thread.join(timeout=5)

    def _supervise(self) -> None:
        wait_seconds = RESTART_FIRST_SECONDS
        while not self.stopping.is_set():
            self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
            status = self.process.wait()
            if self.stopping.is_set():
                return
            log.error("the worker exited with status %s; restarting it in %.0f s",
                      status, wait_seconds)
            self.stopping.wait(wait_seconds)
            wait_seconds = min(RESTART_MAX_SECONDS, wait_seconds * 2)


def run_up(settings: Settings, *, host: str, port: int, threads: int, model: str | None,
           dtype: str, max_batch: int, cache: Path | None) -> None:
    from minidalle import weights as hub

    from .serving import announce, make_server, run_until_stopped

    if model is None:
        folder, model_name = demo_model_folder(cache), DEMO_MODEL_NAME
    else:
        folder = hub.resolve_model(model, cache)
        model_name = model if model in hub.MODEL_NAMES else folder.resolve().name
    settings_token_given = bool(settings.worker_token)
    token = worker_token(settings)
    settings = settings.replace(worker_token=token, default_model=model_name)
    try:
        app, server = make_server(settings, host=host, port=port, threads=threads)
    except OSError as error:
        raise StartupError(f"could not listen on {host}:{port}: {error.strerror or error}") from None
    if model is None:
        app.config["DALLEQ_NOTICE"] = DEMO_NOTICE
    url = f"http://{client_host(host)}:{server.effective_port}"
    worker = WorkerProcess(["--server", url, "--model", str(folder), "--model-name", model_name,
                            "--dtype", dtype, "--max-batch", str(max_batch),
                            "--name", "local"], token)
    announce(host, server.effective_port)
    if not settings_token_given:
        print(f"workers on other machines: dalleq worker --server http://<this machine>:"
              f"{server.effective_port} --token \"$(cat {Path(settings.data_dir) / TOKEN_FILE})\"",
              flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    worker.start()
    try:
        run_until_stopped(server)
    finally:
        worker.stop()


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt
