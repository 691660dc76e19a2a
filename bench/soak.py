"""Soak: a real server, 8 workers and 2 submitters, the server and the workers killed with SIGKILL.

The claims of issue 16 ("nothing lost, nothing orphaned"), checked end to end in about two
minutes: `python -m dalleq serve` on a SQLite file on 127.0.0.1; model-free workers speaking the
real worker protocol (bench/soak_worker.py: long-poll claim, heartbeats, PNG uploads, every lease
logged); submitters that retry each submission with its Idempotency-Key until it is acknowledged
(bench/soak_submitter.py). During the chaos phase the server is killed with SIGKILL and restarted
on the same port and database, and so are workers, each at evenly spaced moments. Then the
submitters stop, the queue drains with the server up, everything is stopped, and the logs and
the database are compared:

- acknowledged jobs: ids the submitters were given (201, or 200 for a retry whose first answer
  was lost);
- jobs lost: acknowledged but not in the database (must be 0);
- duplicate submissions: one submission queued as two jobs (must be 0);
- double claims: a job held by two leases whose lifetimes overlap (must be 0); a lease lives from
  its claim (its first expiry minus the lease length: the server's own clock) to the last expiry
  a claim or heartbeat gave it;
- duplicate results: a job that took uploads from two leases, or holds more image rows than one
  result makes (must be 0);
- done jobs missing files (must be 0);
- orphaned processes: a process group of the soak's still alive after it (must be 0);
- jobs left unfinished: still queued or running after the drain.

The exit status is 1 when a must-be-0 figure is not 0. Every child leads its own process group,
dies with this process (PR_SET_PDEATHSIG) and is stopped in a `finally`, so an interrupted soak
leaves nothing behind. Figures go in bench/README.md (STYLE 38).

Run: python bench/soak.py            (--quick: a ~30 s smoke run; --help: the knobs)
"""

import argparse
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
TOKEN = "soak-worker-token"
LEASE_SECONDS = 10  # short, so a killed worker's job is back in the queue within the drain
MAX_ATTEMPTS = 50  # every kill may cost a job an attempt; failing jobs is not what is measured
SUBMIT_INTERVAL_SECONDS = 0.25  # mean pause between one submitter's submissions
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.5
CLOCK_TOLERANCE = timedelta(milliseconds=1)  # the API's times are truncated to milliseconds
IMAGE_ROWS_PER_RESULT = 3  # a 1x1 grid: the grid, one tile, the thumbnail
PR_SET_PDEATHSIG = 1
MUST_BE_ZERO = ("jobs lost", "duplicate submissions", "double claims", "duplicate results",
                "done jobs missing files", "orphaned processes")
FULL = {"seconds": 100.0, "server_kills": 5, "worker_kills": 5, "drain_seconds": 60.0}
QUICK = {"seconds": 24.0, "server_kills": 2, "worker_kills": 2, "drain_seconds": 30.0}


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the soak itself dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Children:
    """Every process the soak starts, each the leader of a process group of its own."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        self.env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1",
                        DALLEQ_WORKER_TOKEN=TOKEN)

    def start(self, command: list[str], log_name: str) -> subprocess.Popen:
        with open(self.folder / log_name, "ab") as log:
            process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509 (no threads)
            )  # fmt: skip
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL to the whole group, then reap it."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def stop(self, processes: list[subprocess.Popen], timeout_seconds=STOP_TIMEOUT_SECONDS):
        """SIGTERM, and SIGKILL for whatever has not exited within the timeout."""
        for process in processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout_seconds
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(process)

    def stop_all(self) -> None:
        self.stop(self.processes)

    def orphan_count(self) -> int:
        """Process groups of the soak with a member still alive (all were reaped by now)."""
        alive = 0
        for process in self.processes:
            try:
                os.killpg(process.pid, 0)
                alive += 1
            except ProcessLookupError:
                pass
            except PermissionError:  # the id was reused by someone else's process
                pass
        return alive


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Soak:
    def __init__(self, folder: Path, args):
        self.folder = folder
        self.args = args
        self.children = Children(folder)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = folder / "queue.db"
        self.server = None
        self.server_starts = 0
        self.workers: list[subprocess.Popen] = []
        self.worker_starts = Counter()
        self.submitters: list[subprocess.Popen] = []

    # -- processes --------------------------------------------------------------------------
    def start_server(self) -> None:
        self.server_starts += 1
        command = [sys.executable, "-m", "dalleq", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--db", str(self.database),
                   "--data", str(self.folder / "data"), "--lease-seconds", str(LEASE_SECONDS),
                   "--max-attempts", str(MAX_ATTEMPTS)]
        self.server = self.children.start(command, f"server-{self.server_starts}.log")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.folder}")
            try:
                requests.get(f"{self.url}/api/v1/jobs?limit=1", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT_SECONDS} s")

    def start_worker(self, index: int) -> subprocess.Popen:
        self.worker_starts[index] += 1
        name = f"w{index}.{self.worker_starts[index]}"
        command = [sys.executable, str(BENCH / "soak_worker.py"), self.url, TOKEN, name,
                   str(self.folder / f"leases-{name}.jsonl")]
        return self.children.start(command, f"worker-{name}.log")

    def start_submitter(self, index: int) -> subprocess.Popen:
        command = [sys.executable, str(BENCH / "soak_submitter.py"), self.url, f"s{index}",
                   str(self.folder / f"acks-s{index}.jsonl"), str(SUBMIT_INTERVAL_SECONDS)]
        return self.children.start(command, f"submitter-s{index}.log")

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> None:
        """Start everything, run the chaos, drain; the caller stops the children in `finally`."""
        self.start_server()
        self.workers = [self.start_worker(index) for index in range(self.args.workers)]
        self.submitters = [self.start_submitter(index) for index in range(self.args.submitters)]
        self.chaos()
        self.children.stop(self.submitters, timeout_seconds=STOP_TIMEOUT_SECONDS * 4)
        self.drain()
        self.children.stop(self.workers)
        self.children.stop([self.server])

    def chaos(self) -> None:
        """Kill the server or a worker at evenly spaced moments, each restarted at once."""
        kills = ["server"] * self.args.server_kills + ["worker"] * self.args.worker_kills
        random.shuffle(kills)
        start = time.monotonic()
        for number, target in enumerate(kills, start=1):
            moment = start + self.args.seconds * number / (len(kills) + 1)
            time.sleep(max(0.0, moment - time.monotonic()))
            if target == "server":
                self.children.kill(self.server)
                self.start_server()
            else:
                index = random.randrange(len(self.workers))
                self.children.kill(self.workers[index])
                self.workers[index] = self.start_worker(index)
            print(f"  {time.monotonic() - start:5.1f} s: killed and restarted the {target}",
                  flush=True)
        time.sleep(max(0.0, start + self.args.seconds - time.monotonic()))

    def drain(self) -> None:
        """Wait, with the server up, until nothing is queued or running (bounded)."""
        deadline = time.monotonic() + self.args.drain_seconds
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{self.url}/api/v1/jobs?status=queued,running&limit=1",
                                      timeout=5)
                if answer.ok and not answer.json()["jobs"]:
                    return
            except requests.RequestException:
                pass
            time.sleep(POLL_SECONDS)


# -- the figures --------------------------------------------------------------------------------
def read_jsonl(paths) -> list[dict]:
    """Every complete line of the logs (a line cut short by a SIGKILL is skipped)."""
    records = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return records


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lease_spans(events: list[dict]) -> dict[str, list[tuple[datetime, datetime]]]:
    """job id -> (start, end) of each logged lease: start is the claim's expiry minus the lease
    length, end the last expiry a claim or heartbeat gave it."""
    start_from_lease, end_from_lease, job_from_lease = {}, {}, {}
    for event in events:
        if event["event"] not in ("claim", "beat"):
            continue
        lease, expires = event["lease"], parse_time(event["expires_at"])
        if event["event"] == "claim":
            start_from_lease[lease] = expires - timedelta(seconds=LEASE_SECONDS)
            job_from_lease[lease] = event["job"]
        end_from_lease[lease] = max(end_from_lease.get(lease, expires), expires)
    spans = defaultdict(list)
    for lease, start in start_from_lease.items():
        spans[job_from_lease[lease]].append((start, end_from_lease[lease]))
    return spans


def double_claim_count(events: list[dict]) -> int:
    """Jobs held by two leases at once: a lease starting before an earlier one had ended."""
    count = 0
    for spans in lease_spans(events).values():
        spans.sort()
        latest_end = None
        for start, end in spans:
            if latest_end is not None and start + CLOCK_TOLERANCE < latest_end:
                count += 1
                break
            latest_end = end if latest_end is None else max(latest_end, end)
    return count


def database_rows(database: Path):
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        jobs = connection.execute("SELECT seq, id, prompt, status, files_dir FROM jobs").fetchall()
        image_rows = dict(
            connection.execute("SELECT job_seq, count(*) FROM images GROUP BY job_seq").fetchall()
        )
    finally:
        connection.close()
    return jobs, image_rows


def has_grid(folder: Path, files_dir: str | None) -> bool:
    """Whether a done job's grid.png is on disk and not empty (server/storage.py's layout)."""
    grid = folder / "data" / "jobs" / (files_dir or "-") / "grid.png"
    return grid.is_file() and grid.stat().st_size > 0


def figures(soak: Soak) -> dict:
    folder = soak.folder
    submissions = read_jsonl(sorted(folder.glob("acks-*.jsonl")))
    lease_events = read_jsonl(sorted(folder.glob("leases-*.jsonl")))
    acknowledged = [record for record in submissions if record["event"] == "ack"]
    jobs, image_rows = database_rows(soak.database)
    ids_in_database = {job[1] for job in jobs}
    prompt_counts = Counter(job[2] for job in jobs)
    leases_from_job = defaultdict(set)
    for event in lease_events:
        if event["event"] == "result":
            leases_from_job[event["job"]].add(event["lease"])
    done = [job for job in jobs if job[3] == "done"]
    statuses = Counter(job[3] for job in jobs)
    return {
        "acknowledged jobs": len(acknowledged),
        "  acknowledged on a retry (200)": sum(r["status"] == 200 for r in acknowledged),
        "  submissions sent more than once": sum(r["tries"] > 1 for r in acknowledged),
        "  submissions given up or refused": len(submissions) - len(acknowledged),
        "jobs lost": sum(r["job"] not in ids_in_database for r in acknowledged),
        "duplicate submissions": sum(count - 1 for count in prompt_counts.values() if count > 1),
        "claims": sum(event["event"] == "claim" for event in lease_events),
        "  leases lost (409, after a kill)": sum(e["event"] == "lost" for e in lease_events),
        "double claims": double_claim_count(lease_events),
        "duplicate results": len(
            {job for job, leases in leases_from_job.items() if len(leases) > 1}
            | {job[1] for job in jobs if image_rows.get(job[0], 0) > IMAGE_ROWS_PER_RESULT}
        ),
        "done jobs missing files": sum(not has_grid(folder, job[4]) for job in done),
        "jobs done": len(done),
        "jobs failed": statuses["failed"],
        "jobs left unfinished": statuses["queued"] + statuses["running"],
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument("--seconds", type=float, help=f"chaos phase (default {FULL['seconds']})")
    parser.add_argument("--server-kills", type=int, help=f"default {FULL['server_kills']}")
    parser.add_argument("--worker-kills", type=int, help=f"default {FULL['worker_kills']}")
    parser.add_argument("--drain-seconds", type=float,
                        help=f"most time the queue gets to drain (default {FULL['drain_seconds']})")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--submitters", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the logs and database")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def stop_on_signal(signal_number, _frame):
    """SIGTERM or SIGHUP end the soak like Ctrl-C: through the `finally` that stops every child."""
    raise SystemExit(128 + signal_number)


def main(argv=None) -> int:
    args = parse_args(argv)
    for signal_number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signal_number, stop_on_signal)
    folder = Path(tempfile.mkdtemp(prefix="dalleq-soak-"))
    soak = Soak(folder, args)
    print(f"soak: {args.seconds:g} s of chaos, {args.workers} workers, {args.submitters} "
          f"submitters, {args.server_kills} server and {args.worker_kills} worker SIGKILLs "
          f"(logs in {folder})", flush=True)
    started = time.monotonic()
    try:
        soak.run()
    finally:
        soak.children.stop_all()
    result = figures(soak)
    result["orphaned processes"] = soak.children.orphan_count()
    print(f"finished in {time.monotonic() - started:.0f} s")
    for name, value in result.items():
        note = "  (must be 0)" if name in MUST_BE_ZERO else ""
        print(f"{name:<38} {value:>6}{note}")
    failed = [name for name in MUST_BE_ZERO if result[name]]
    if failed:
        print(f"FAIL: {', '.join(failed)}; logs kept in {folder}")
        return 1
    print("PASS")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
