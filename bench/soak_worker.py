"""A model-free worker for bench/soak.py: the real worker protocol over HTTP, and a log of leases.

It claims with a long poll, "works" a fraction of a second while it heartbeats, and uploads a
valid 1x1 grid (two 256x256 PNGs), through worker/client.py (requests only, no model code). Every
claim, every extended lease and every accepted upload is one JSON line in its log, written the
moment the answer arrives, so that after any number of kill -9s soak.py can check that no two
live leases on one job ever overlapped and that no job took two results.

Run by soak.py: python bench/soak_worker.py URL TOKEN NAME LOG
"""

import io
import json
import random
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from PIL import Image

from worker.client import QueueClient
from worker.errors import JobGone, LeaseLost, Rejected, ServerUnavailable

MODELS = ["mini"]
CLAIM_WAIT_SECONDS = 2.0  # short, so a stop is heard within a couple of seconds
HTTP_TIMEOUT_SECONDS = 10.0
WORK_SECONDS = (0.2, 0.8)  # a job's pretend generation time, drawn uniformly
HEARTBEAT_EVERY_SECONDS = 0.5
RETRY_SECONDS = 0.3  # between tries while the server is down
UPLOAD_GIVE_UP_SECONDS = 60.0  # a lease is long gone by then: soak.py restarts a server in ~2 s
TILE_PIXELS = 256


def png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (TILE_PIXELS, TILE_PIXELS), color).save(buffer, format="PNG")
    return buffer.getvalue()


class LeaseLog:
    """One JSON object a line, each written whole with its own write (line buffering)."""

    def __init__(self, handle, name: str):
        self.handle = handle
        self.name = name

    def write(self, event: str, job_id: str, lease: str, **fields) -> None:
        record = {"event": event, "worker": self.name, "job": job_id, "lease": lease, **fields}
        self.handle.write(json.dumps(record) + "\n")


class SoakWorker:
    def __init__(self, url: str, token: str, name: str, log: LeaseLog):
        self.client = QueueClient(url, token, timeout_seconds=HTTP_TIMEOUT_SECONDS)
        self.name = name
        self.log = log
        self.is_stopping = False
        self.grid_png = png((200, 30, 30))
        self.tile_png = png((30, 90, 160))

    def stop(self, *_signal) -> None:
        self.is_stopping = True

    def run(self) -> None:
        """Claim, work, upload, until asked to stop; a job in hand is finished first."""
        while not self.is_stopping:
            try:
                claims = self.client.claim(self.name, MODELS, 1, CLAIM_WAIT_SECONDS)
            except ServerUnavailable:
                time.sleep(RETRY_SECONDS)
                continue
            for claim in claims:
                expires = claim.lease_expires_at.isoformat()
                self.log.write("claim", claim.job_id, claim.lease, expires_at=expires)
                if self.work(claim.job_id, claim.lease):
                    self.upload(claim.job_id, claim.lease)

    def work(self, job_id: str, lease: str) -> bool:
        """Pretend to generate, heartbeating; False when the lease is lost."""
        deadline = time.monotonic() + random.uniform(*WORK_SECONDS)
        progress = 0.0
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, HEARTBEAT_EVERY_SECONDS))
            progress = min(progress + 0.2, 0.9)
            try:
                beat = self.client.heartbeat(job_id, lease, progress)
            except ServerUnavailable:
                continue  # the server is restarting: the lease outlives a short outage
            except (LeaseLost, JobGone) as error:
                self.log.write("lost", job_id, lease, reason=str(error))
                return False
            self.log.write("beat", job_id, lease, expires_at=beat.lease_expires_at.isoformat())
        return True

    def upload(self, job_id: str, lease: str) -> None:
        """Post the result, again with the same lease while the server is down (a repeat by the
        lease that finished the job is a 200 that changes nothing)."""
        give_up = time.monotonic() + UPLOAD_GIVE_UP_SECONDS
        while time.monotonic() < give_up:
            try:
                self.client.post_result(job_id, lease, self.grid_png, [self.tile_png],
                                        {"device": "soak"})
            except ServerUnavailable:
                time.sleep(RETRY_SECONDS)
                continue
            except (LeaseLost, JobGone, Rejected) as error:
                self.log.write("lost", job_id, lease, reason=str(error))
                return
            self.log.write("result", job_id, lease)
            return
        self.log.write("lost", job_id, lease, reason="gave up uploading")


def main(url: str, token: str, name: str, log_path: str) -> None:
    with open(log_path, "a", buffering=1) as handle:  # line-buffered: one write per record
        worker = SoakWorker(url, token, name, LeaseLog(handle, name))
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        worker.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
