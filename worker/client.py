"""The HTTP client for the worker endpoints of shared/API.md ("For workers").

Each call maps the server's answer to a return value or to one of worker/errors.py, so the loop
reads like the protocol and never parses HTTP itself. One client per thread: a requests.Session
is not shared between threads.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import requests

from . import defaults
from .errors import JobGone, LeaseLost, Rejected, ServerUnavailable, Unauthorized


@dataclasses.dataclass(frozen=True)
class Claim:
    """A job this worker holds, with the lease that proves it."""

    job: dict
    lease: str
    lease_expires_at: datetime

    @property
    def job_id(self) -> str:
        return self.job["id"]


@dataclasses.dataclass(frozen=True)
class Beat:
    lease_expires_at: datetime
    is_cancel_requested: bool


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def error_message(response: requests.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason


class QueueClient:
    def __init__(self, server_url: str, token: str,
                 timeout_seconds: float = defaults.HTTP_TIMEOUT_SECONDS):
        self.base_url = server_url.rstrip("/") + "/api/v1/worker"
        self.timeout_seconds = timeout_seconds
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def claim(self, worker_name: str, models: list[str], max_jobs: int,
              wait_seconds: float) -> list[Claim]:
        """Up to max_jobs queued jobs for these models, oldest first; [] when none came in time."""
        response = self._post("/claim", timeout_extra=wait_seconds, json={
            "worker": worker_name, "models": models, "max_jobs": max_jobs, "wait": wait_seconds,
        })
        if response.status_code == 204:
            return []
        return [Claim(item["job"], item["lease"], parse_time(item["lease_expires_at"]))
                for item in response.json()["jobs"]]

    def heartbeat(self, job_id: str, lease: str, progress: float) -> Beat:
        response = self._post(f"/jobs/{job_id}/heartbeat",
                              json={"lease": lease, "progress": round(progress, 4)})
        body = response.json()
        return Beat(parse_time(body["lease_expires_at"]), bool(body["cancel_requested"]))

    def post_result(self, job_id: str, lease: str, grid_png: bytes, tile_pngs: list[bytes],
                    meta: dict) -> dict:
        """Uploads the grid and every tile; returns the job (done, or canceled when a cancel came
        first)."""
        files = {"grid": ("grid.png", grid_png, "image/png")}
        for index, png in enumerate(tile_pngs):
            files[f"image_{index}"] = (f"image_{index}.png", png, "image/png")
        response = self._post(f"/jobs/{job_id}/result", files=files,
                              data={"lease": lease, "meta": json.dumps(meta)},
                              timeout_extra=defaults.UPLOAD_TIMEOUT_SECONDS)
        return response.json()

    def post_preview(self, job_id: str, lease: str, steps: int, webp: bytes) -> Beat:
        """Uploads a preview of the grid forming (shared/API-1.1.md); it counts as a heartbeat.
        It waits at most PREVIEW_TIMEOUT_SECONDS: a preview is not worth holding a batch up."""
        response = self._post(f"/jobs/{job_id}/preview",
                              files={"image": ("preview.webp", webp, "image/webp")},
                              data={"lease": lease, "steps": str(steps)},
                              timeout_seconds=defaults.PREVIEW_TIMEOUT_SECONDS)
        body = response.json()
        return Beat(parse_time(body["lease_expires_at"]), bool(body["cancel_requested"]))

    def fail(self, job_id: str, lease: str, error: str, is_retryable: bool) -> dict:
        response = self._post(f"/jobs/{job_id}/fail",
                              json={"lease": lease, "error": error, "retryable": is_retryable})
        return response.json()

    def post_status(self, worker_name: str, state: str, reason: str | None,
                    models: list[str]) -> bool:
        """Tells the server this worker is working, idle or paused (and why), for the queue
        page. False when the server has no such endpoint (404: it predates issue 19)."""
        try:
            self._post("/status", timeout_seconds=defaults.STATUS_TIMEOUT_SECONDS, json={
                "worker": worker_name, "state": state, "reason": reason, "models": models,
            })
        except JobGone:
            return False
        return True

    def _post(self, path: str, timeout_extra: float = 0.0, timeout_seconds: float | None = None,
              **kwargs) -> requests.Response:
        timeout_seconds = self.timeout_seconds if timeout_seconds is None else timeout_seconds
        try:
            response = self.session.post(self.base_url + path,
                                         timeout=timeout_seconds + timeout_extra, **kwargs)
        except requests.RequestException as error:
            raise ServerUnavailable(f"{path}: {error}") from error
        status = response.status_code
        if status < 400:
            return response
        message = f"{path}: {status} {error_message(response)}"
        if status >= 500 or status in (408, 429):
            raise ServerUnavailable(message)
        if status == 401:
            raise Unauthorized(message)
        if status == 409:
            raise LeaseLost(message)
        if status == 404:
            raise JobGone(message)
        raise Rejected(message)
