"""`dalleq up`: the server and a local worker on this machine, the whole loop in one command.

The server runs in this process; the worker runs as a child process (`dalleq worker`), so a
model crash or an out-of-memory kill never takes the queue down: the child is restarted with
backoff and its job's lease simply expires. The child gets its own session, so a Ctrl-C in the
terminal reaches only us, and we send it exactly one SIGTERM: it finishes its batch, then exits.
The worker stops first and the server after it, so that batch can still upload, and an idle
worker is not left backing off against a server that is gone. A second Ctrl-C is passed on: the
worker hands its leases back. If we are killed hard, the worker notices through a pipe and ends
too (parent_pipe.py).

With no model given, the worker runs the demo checkpoint (`--model demo`: a tiny model with
random weights, written on first use into the models cache), and every page says so.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

import click

from minidalle import weights as hub
from server.config import Settings
from server.errors import StartupError
from worker import defaults as worker_defaults

from .logs import configure_logging
from .parent_pipe import ParentPipe
from .server_commands import build_settings, listen_options, settings_options
from .worker_command import advertised_name, worker_options

log = logging.getLogger(__name__)

DEMO_NOTICE = ("Demo model with random weights: its images are noise, not pictures of your "
               "prompt. See the README for real weights.")
TOKEN_FILE = ".worker_token"
WORKER_STOP_SECONDS = 60.0  # the worker's current batch may finish within this
RESTART_FIRST_SECONDS, RESTART_MAX_SECONDS = 1.0, 60.0
SIGNAL_CHECK_SECONDS = 0.5  # the main thread waits on the server in steps this long


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


def client_host(host: str) -> str:
    """Where a worker on this machine reaches a server bound to `host`."""
    from server.serving import url_host

    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else url_host(host)


class WorkerProcess:
    """Runs `dalleq worker` as a child and restarts it when it dies, until stop()."""

    def __init__(self, arguments: list[str], token: str):
        self.parent_pipe = ParentPipe()
        self.command = [sys.executable, "-m", "dalleq", "worker", *arguments,
                        "--parent-fd", str(self.parent_pipe.read_fd)]
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
                self._wait_or_kill(process)
            except KeyboardInterrupt:  # a second Ctrl-C: the worker hands its leases back
                process.send_signal(signal.SIGTERM)
                self._wait_or_kill(process)
            log.info("the worker stopped (exit status %s)", process.returncode)
        self.thread.join(timeout=5)

    @staticmethod
    def _wait_or_kill(process: subprocess.Popen) -> None:
        try:
            process.wait(timeout=WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _supervise(self) -> None:
        wait_seconds = RESTART_FIRST_SECONDS
        while not self.stopping.is_set():
            self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True,
                                            pass_fds=(self.parent_pipe.read_fd,))
            status = self.process.wait()
            if self.stopping.is_set():
                return
            log.error("the worker exited with status %s; restarting it in %.0f s",
                      status, wait_seconds)
            self.stopping.wait(wait_seconds)
            wait_seconds = min(RESTART_MAX_SECONDS, wait_seconds * 2)


@click.command()
@listen_options
@settings_options
@functools.partial(worker_options, model_default=None,
                   model_help=" Unset: the demo model (random weights, written on first use).")
def up(host, port, threads, model, dtype, max_batch, rank, previews, idle_unload, quiet_hours,
       yield_to, yield_to_gpu, cache, **settings_flags):
    """Run the server and a worker on this machine: the whole loop in one command.

    The worker runs as a child process and is restarted if it dies. A worker token is made
    and kept in the data folder unless one is given.
    """
    configure_logging()
    try:
        run_up(build_settings(**settings_flags), host=host, port=port, threads=threads,
               model=model or hub.DEMO_MODEL_NAME, dtype=dtype, max_batch=max_batch, cache=cache,
               rank=rank, previews=str(previews),
               gpu_sharing=gpu_sharing_arguments(idle_unload, quiet_hours, yield_to,
                                                 yield_to_gpu))
    except (hub.WeightsError, StartupError) as error:
        raise click.ClickException(str(error)) from None


def run_up(settings: Settings, *, host: str, port: int, threads: int, model: str, dtype: str,
           max_batch: int, cache: Path | None, rank: bool | None = None,
           previews: str = worker_defaults.PREVIEWS, gpu_sharing: list[str] = ()) -> None:
    from server.serving import BackgroundServer, announce, make_server

    folder = hub.resolve_model(model, cache)
    model_name = advertised_name(model, folder)
    settings_token_given = bool(settings.worker_token)
    token = worker_token(settings)
    settings = settings.replace(worker_token=token, default_model=model_name)
    try:
        app, server = make_server(settings, host=host, port=port, threads=threads)
    except OSError as error:
        raise StartupError(f"could not listen on {host}:{port}: {error.strerror or error}") from None
    if model == hub.DEMO_MODEL_NAME:
        app.config["DALLEQ_NOTICE"] = DEMO_NOTICE
    url = f"http://{client_host(host)}:{server.effective_port}"
    worker = WorkerProcess(["--server", url, "--model", str(folder), "--model-name", model_name,
                            "--dtype", dtype, "--max-batch", str(max_batch),
                            "--previews", previews,
                            "--name", "local", *worker_rank_arguments(rank, cache),
                            *gpu_sharing], token)
    announce(host, server.effective_port)
    if not settings_token_given:
        print(f"workers on other machines: dalleq worker --server http://<this machine>:"
              f"{server.effective_port} --token \"$(cat {Path(settings.data_dir) / TOKEN_FILE})\"",
              flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    serving = BackgroundServer(server).start()
    worker.start()
    try:
        while serving.wait(SIGNAL_CHECK_SECONDS):
            pass
    except KeyboardInterrupt:
        log.info("stopping: the worker first, then the server")
    finally:
        worker.stop()  # the server still answers meanwhile: the current batch can upload
        serving.close()
        app.extensions["dalleq"].push.stop()


def worker_rank_arguments(rank: bool | None, cache: Path | None) -> list[str]:
    """The worker's --rank/--no-rank and --cache (where CLIP is looked for) as given to up."""
    arguments = [] if cache is None else ["--cache", str(cache)]
    return arguments if rank is None else [*arguments, "--rank" if rank else "--no-rank"]


def gpu_sharing_arguments(idle_unload: float | None, quiet_hours, yield_to: str | None,
                          is_yield_to_gpu: bool) -> list[str]:
    """The worker's --idle-unload, --quiet-hours, --yield-to and --yield-to-gpu as given to up."""
    arguments = [] if idle_unload is None else ["--idle-unload", f"{idle_unload:g}"]
    if quiet_hours is not None:
        arguments += ["--quiet-hours", str(quiet_hours)]
    if yield_to:
        arguments += ["--yield-to", yield_to]
    return [*arguments, "--yield-to-gpu"] if is_yield_to_gpu else arguments


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt
