"""Small helpers the tests share: PNG bytes, result uploads, a real server in a subprocess."""

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from PIL import Image

TILE = 256
REPO = Path(__file__).resolve().parent.parent


def png_bytes(side: int, color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), color).save(buffer, format="PNG")
    return buffer.getvalue()


def result_files(grid: int, *, grid_png=None, tiles=None) -> dict:
    """Multipart parts for a result upload: `grid` and image_0..image_{n-1}, all valid by default."""
    files = {"grid": ("grid.png", grid_png or png_bytes(TILE * grid), "image/png")}
    for index in range(grid * grid):
        tile = tiles[index] if tiles else png_bytes(TILE, (10 * index % 256, 90, 160))
        files[f"image_{index}"] = (f"tile_{index}.png", tile, "image/png")
    return files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m dalleq serve` on 127.0.0.1 and a free port, stopped by stop() or the fixture."""

    def __init__(self, tmp_path: Path, *, env=None, database_url=None, extra_args=()):
        self.tmp_path = tmp_path
        self.database_url = database_url or f"sqlite:///{tmp_path / 'queue.db'}"
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.extra_args = list(extra_args)
        self.process = None
        self.url = None
        self.log_path = tmp_path / f"server-{time.monotonic_ns()}.log"

    def start(self, timeout_seconds: float = 30.0) -> "ServerProcess":
        port = free_port() if self.url is None else int(self.url.rsplit(":", 1)[1].strip("/"))
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dalleq", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--db", self.database_url, "--data", str(self.tmp_path / "data"), *self.extra_args],
            cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            match = re.search(r"serving on (http://\S+)", self.output())
            if match:
                self.url = match.group(1).rstrip("/")
                try:
                    requests.get(self.url + "/api/v1/jobs?limit=1", timeout=2)
                    return self
                except requests.ConnectionError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout_seconds}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()


class WorkerProcess:
    """`python -m dalleq worker` against a server, logging to a file; stopped by stop() or kill()."""

    def __init__(self, tmp_path: Path, server_url: str, token: str, model_dir: Path, *,
                 name="w1", model_name="tiny", extra_args=(), env=None):
        self.log_path = tmp_path / f"worker-{name}-{time.monotonic_ns()}.log"
        self.command = [
            sys.executable, "-m", "dalleq", "worker", "--server", server_url, "--model",
            str(model_dir), "--model-name", model_name, "--name", name,
            "--spool", str(tmp_path / f"spool-{name}"), *extra_args,
        ]
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", DALLEQ_WORKER_TOKEN=token, **(env or {}))
        self.process = None

    def start(self) -> "WorkerProcess":
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        return self

    def wait_until_ready(self, timeout_seconds: float = 120.0) -> "WorkerProcess":
        return self.wait_for_log(r"worker \S+ ready", timeout_seconds)

    def wait_for_log(self, pattern: str, timeout_seconds: float = 60.0) -> "WorkerProcess":
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if re.search(pattern, self.output()):
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.output()}")
            time.sleep(0.05)
        raise RuntimeError(f"no {pattern!r} in the worker's log within {timeout_seconds}s:\n"
                           f"{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout_seconds: float = 60.0) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()
        return self.process.returncode if self.process else 0


def wait_for(predicate, timeout_seconds: float = 60.0, interval_seconds: float = 0.05,
             message: str = "condition"):
    """Polls predicate() until it returns something truthy; returns it, or fails the test."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_seconds)
    raise AssertionError(f"timed out after {timeout_seconds}s waiting for {message}")
