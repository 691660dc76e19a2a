"""A submitter for bench/soak.py: queues jobs as a careful client does, through every outage.

Each submission gets a fresh Idempotency-Key and is sent again with the same key and body after a
connection error, a timeout or a 5xx, until the server acknowledges it (201, or 200 when an
earlier try had already queued it and only its answer was lost). Every acknowledged job id is one
JSON line in the log: these are the jobs soak.py then looks for in the database.

Run by soak.py: python bench/soak_submitter.py URL NAME LOG INTERVAL_SECONDS
"""

import json
import random
import signal
import sys
import time
import uuid

import requests

HTTP_TIMEOUT_SECONDS = 10.0
RETRY_SECONDS = 0.3
GIVE_UP_SECONDS = 60.0  # per submission; soak.py restarts a killed server in a few seconds


class Submitter:
    def __init__(self, url: str, name: str, log, interval_seconds: float):
        self.jobs_url = url.rstrip("/") + "/api/v1/jobs"
        self.name = name
        self.log = log  # line-buffered: one write per acknowledged job
        self.interval_seconds = interval_seconds
        self.session = requests.Session()
        self.is_stopping = False

    def stop(self, *_signal) -> None:
        self.is_stopping = True

    def run(self) -> None:
        number = 0
        while not self.is_stopping:
            number += 1
            self.submit(number)
            time.sleep(random.uniform(0, 2 * self.interval_seconds))

    def submit(self, number: int) -> None:
        """Send one submission until it is acknowledged (or refused, or the budget is spent)."""
        key = uuid.uuid4().hex
        body = {"prompt": f"soak {self.name} {number}", "grid": 1, "seed": number}
        give_up = time.monotonic() + GIVE_UP_SECONDS
        tries = 0
        while time.monotonic() < give_up:
            tries += 1
            try:
                response = self.session.post(self.jobs_url, json=body, timeout=HTTP_TIMEOUT_SECONDS,
                                             headers={"Idempotency-Key": key})
            except requests.RequestException:
                time.sleep(RETRY_SECONDS)
                continue
            if response.status_code >= 500:
                time.sleep(RETRY_SECONDS)
                continue
            record = {"key": key, "prompt": body["prompt"], "status": response.status_code,
                      "tries": tries}
            if response.status_code in (200, 201):
                record["event"], record["job"] = "ack", response.json()["id"]
            else:
                record["event"], record["answer"] = "refused", response.text[:200]
            self.log.write(json.dumps(record) + "\n")
            return
        self.log.write(json.dumps({"event": "gave_up", "key": key, "tries": tries}) + "\n")


def main(url: str, name: str, log_path: str, interval_seconds: str) -> None:
    with open(log_path, "a", buffering=1) as log:
        submitter = Submitter(url, name, log, float(interval_seconds))
        signal.signal(signal.SIGTERM, submitter.stop)
        signal.signal(signal.SIGINT, submitter.stop)
        submitter.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
