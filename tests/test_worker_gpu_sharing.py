"""Sharing the GPU with games (issue 19): allocation on demand, idle unload, quiet hours, yielding
to other processes, and the worker's state told to the server.

Clocks and process probes are fakes, so a night of quiet hours passes in microseconds; the HTTP
is real: a recording server on 127.0.0.1, and the real queue server for the reload after an
idle unload.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from click.testing import CliRunner

from dalleq.cli import main
from tests.conftest import WORKER_TOKEN
from worker import defaults
from worker.availability import Availability, QuietHours, parse_process_names
from worker.client import QueueClient
from worker.gpu_memory import MEM_FRACTION_ENV, PREALLOCATE_ENV, allocate_on_demand
from worker.gpu_processes import GpuProcess, other_gpu_processes, parse_compute_apps
from worker.status import StatusReporter
from worker.stopping import StopRequests

STATUS_PATH = "/api/v1/worker/status"
CLAIM_PATH = "/api/v1/worker/claim"


# -- allocation on demand ----------------------------------------------------------------------
@pytest.mark.parametrize("environ, expected", [
    ({}, {PREALLOCATE_ENV: "false"}),
    ({PREALLOCATE_ENV: "true"}, {PREALLOCATE_ENV: "true"}),  # the user's own choice is kept
    ({MEM_FRACTION_ENV: ".5"}, {MEM_FRACTION_ENV: ".5"}),  # a fraction to preallocate, chosen
])
def test_the_worker_allocates_gpu_memory_on_demand_unless_the_user_chose(environ, expected):
    allocate_on_demand(environ)
    assert environ == expected


# -- quiet hours and yielding --------------------------------------------------------------------
@pytest.mark.parametrize("text, start, end", [
    ("23:00-07:00", time(23, 0), time(7, 0)),
    (" 9:30 - 17:05 ", time(9, 30), time(17, 5)),
])
def test_quiet_hours_read_hh_mm_hh_mm(text, start, end):
    assert QuietHours.parse(text) == QuietHours(start, end)


@pytest.mark.parametrize("text, message", [
    ("23:00", "is not HH:MM-HH:MM"),
    ("25:00-07:00", "is not a time of day"),
    ("23:60-07:00", "is not a time of day"),
    ("07:00-07:00", "starts and ends at the same time"),
    ("late-early", "is not HH:MM-HH:MM"),
])
def test_bad_quiet_hours_are_a_usage_error(text, message):
    result = CliRunner().invoke(main, ["worker", "--server", "http://127.0.0.1:9",
                                       "--token", "t", "--quiet-hours", text])
    assert result.exit_code == 2
    assert "--quiet-hours" in result.output and message in result.output


@pytest.mark.parametrize("window, moment, is_quiet", [
    ("23:00-07:00", time(23, 0), True),
    ("23:00-07:00", time(2, 30), True),  # past midnight
    ("23:00-07:00", time(6, 59), True),
    ("23:00-07:00", time(7, 0), False),  # the end is not in the window
    ("23:00-07:00", time(12, 0), False),
    ("09:00-17:00", time(12, 0), True),
    ("09:00-17:00", time(23, 30), False),
])
def test_quiet_hours_may_cross_midnight(window, moment, is_quiet):
    assert QuietHours.parse(window).contains(moment) is is_quiet


def test_process_names_are_read_without_case_or_blanks():
    assert parse_process_names(" steam, EldenRing.exe,,steam ") == ("steam", "eldenring.exe")


def test_the_hold_reason_names_the_window_or_the_process():
    night = Availability(QuietHours.parse("23:00-07:00"), now=lambda: datetime(2030, 1, 1, 23, 5))
    assert night.hold_reason() == "quiet hours until 07:00"

    running = {"steam"}
    games = Availability(yield_to_names="Steam,eldenring.exe", running_names=lambda: running)
    assert games.hold_reason() == "GPU busy: steam is running"
    running = {"bash"}
    assert games.hold_reason() is None

    users = [GpuProcess(41, "eldenring.exe")]
    gpu = Availability(is_yield_to_gpu=True, running_names=lambda: set(),
                       other_gpu_processes=lambda: users)
    assert gpu.hold_reason() == "GPU busy: eldenring.exe using the GPU"
    users = []
    assert gpu.hold_reason() is None
    assert Availability().hold_reason() is None


def test_gpu_processes_leave_out_this_worker_and_read_nvidia_smi():
    listed = parse_compute_apps("1234, /usr/bin/python3\nnot a line\n77, C:\\Games\\x.exe\n")
    assert listed[0] == GpuProcess(1234, "python3") and [p.pid for p in listed] == [1234, 77]
    assert other_gpu_processes(own_pid=1234, probe=lambda: listed) == [listed[1]]


# -- a recording server -------------------------------------------------------------------------
class RecordingServer:
    """A worker-API stand-in on 127.0.0.1 that records each request: claims get 204, the state
    report 200, or 404 as an older server answers."""

    def __init__(self, status_code: int = 200):
        self.requests: list[tuple[str, dict]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                recorder.requests.append((self.path, body))
                code = status_code if self.path == STATUS_PATH else 204
                self.send_response(code)
                payload = b"{}" if code == 200 else b""
                if code == 404:
                    payload = b'{"error": {"code": "not_found", "message": "no such page"}}'
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def states(self) -> list[tuple[str, str | None]]:
        return [(body["state"], body["reason"]) for path, body in self.requests
                if path == STATUS_PATH]


class Clock:
    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


def test_the_state_is_sent_on_change_and_again_while_it_lasts():
    clock = Clock()
    with RecordingServer() as server:
        client = QueueClient(server.url, WORKER_TOKEN)
        status = StatusReporter(lambda: client, "box", ["mini"], clock=clock)
        status.report("idle")
        status.report("idle")  # unchanged: not sent again yet
        clock.seconds += defaults.STATUS_REPEAT_SECONDS
        status.report("idle")
        status.report("paused", "x" * 300)
        status.report("working")
        client.close()
    assert server.requests[0] == (STATUS_PATH, {"worker": "box", "state": "idle", "reason": None,
                                                "models": ["mini"]})
    assert server.states() == [("idle", None), ("idle", None), ("paused", "x" * 200),
                               ("working", None)]


def test_an_older_server_without_the_state_endpoint_is_told_once(caplog):
    caplog.set_level(logging.INFO, logger="worker.status")
    clock = Clock()
    with RecordingServer(status_code=404) as server:
        client = QueueClient(server.url, WORKER_TOKEN)
        status = StatusReporter(lambda: client, "box", ["mini"], clock=clock)
        for state in ("idle", "working", "paused"):
            status.report(state, "why" if state == "paused" else None)
            clock.seconds += 100
        client.close()
    assert server.paths() == [STATUS_PATH]
    notes = [r for r in caplog.records if "no worker status endpoint" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO


# -- the worker pausing -------------------------------------------------------------------------
class ClockedStop(StopRequests):
    """Stop requests whose waits advance a fake clock instead of sleeping."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.seconds += seconds


class Scripted:
    """A probe answering from a script, one answer per call; past its end it asks the worker
    to stop (so the loop is bounded) and answers the last one."""

    def __init__(self, answers: list, stop: StopRequests):
        self.answers = list(answers)
        self.stop = stop

    def __call__(self):
        if len(self.answers) > 1:
            return self.answers.pop(0)
        self.stop.request("the script is over")
        return self.answers[0]


class HeldModel:
    """A model with one device array, as worker/model_holder.py sees a pipeline."""

    def __init__(self):
        import jax.numpy as jnp

        self.params = {"w": jnp.ones((4, 4))}


@pytest.fixture
def jax_numpy():
    return pytest.importorskip("jax.numpy")


def paused_worker(tmp_path, server_url, availability_of, model_holder, stop, clock):
    from worker.runner import ModelInfo, Worker, WorkerOptions

    options = WorkerOptions(server_url, WORKER_TOKEN, "box", "tiny", tmp_path / "spool",
                            claim_wait_seconds=0.0)
    return Worker(options, model_holder, ModelInfo("tiny", "fp32", "cpu", True), stop=stop,
                  availability=availability_of(stop), clock=clock)


def quiet_until_seven(stop, clock):
    """Quiet hours 23:00-07:00 from 06:59:00, the wall clock following the fake one."""
    start = datetime(2030, 1, 2, 6, 59)
    moments = [start.replace(second=0), start.replace(second=30), start.replace(hour=7, minute=0)]
    return Availability(QuietHours.parse("23:00-07:00"),
                        now=Scripted([*moments, moments[-1]], stop)), "quiet hours until 07:00"


def steam_for_two_checks(stop, _clock):
    return Availability(yield_to_names="steam",
                        running_names=Scripted([{"steam"}, {"steam"}, set(), set()], stop)), \
        "GPU busy: steam is running"


def gpu_busy_for_two_checks(stop, _clock):
    game = [GpuProcess(4242, "eldenring.exe")]
    return Availability(is_yield_to_gpu=True,
                        other_gpu_processes=Scripted([game, game, [], []], stop)), \
        "GPU busy: eldenring.exe using the GPU"


@pytest.mark.parametrize("make_availability", [quiet_until_seven, steam_for_two_checks,
                                               gpu_busy_for_two_checks])
def test_a_held_worker_sends_no_claim_unloads_and_resumes_by_itself(
        tmp_path, caplog, jax_numpy, make_availability):
    from worker.model_holder import ModelHolder, device_arrays

    caplog.set_level(logging.INFO)
    clock = Clock()
    stop = ClockedStop(clock)
    model = HeldModel()
    holder = ModelHolder(HeldModel, model)
    made: dict = {}

    def availability_of(stop):
        made["availability"], made["reason"] = make_availability(stop, clock)
        return made["availability"]

    with RecordingServer() as server:
        worker = paused_worker(tmp_path, server.url, availability_of, holder, stop, clock)
        assert worker.run() == 0
    reason = made["reason"]
    # two checks held (30 s apart), then claims again
    assert server.paths() == [STATUS_PATH, STATUS_PATH, STATUS_PATH, CLAIM_PATH]
    assert server.states() == [("paused", reason), ("paused", reason), ("idle", None)]
    assert stop.slept == [defaults.HOLD_CHECK_SECONDS] * 2
    assert all(array.is_deleted() for array in device_arrays(model))
    assert not holder.is_loaded  # no job came: nothing loaded it again
    messages = [record.getMessage() for record in caplog.records]
    assert sum(message.startswith("pausing: ") for message in messages) == 1
    assert sum(message.startswith("resuming: ") for message in messages) == 1
    assert f"pausing: {reason}" in "\n".join(messages)


# -- idle unload, and the reload at the next claim ------------------------------------------------
def test_an_idle_worker_frees_the_model_and_the_next_claim_loads_it_again(
        tmp_path, live_server, tiny_checkpoint, jax_cache_dir):
    import jax

    from minidalle.pipeline import Pipeline
    from worker.model_holder import ModelHolder, device_arrays
    from worker.runner import ModelInfo, Worker, WorkerOptions

    def load():
        return Pipeline.load(tiny_checkpoint, compilation_cache_dir=jax_cache_dir)

    first = load()
    first_arrays = device_arrays(first)
    assert first_arrays and not any(array.is_deleted() for array in first_arrays)
    holder = ModelHolder(load, first)
    clock = Clock()
    options = WorkerOptions(live_server.url, WORKER_TOKEN, "box", "tiny", tmp_path / "spool",
                            claim_wait_seconds=0.0, is_once=True, idle_unload_seconds=600.0)
    worker = Worker(options, holder, ModelInfo("tiny", "fp32", "cpu", True), clock=clock)
    job = requests.post(f"{live_server.url}/api/v1/jobs",
                        json={"prompt": "a fox", "model": "tiny", "grid": 1}, timeout=10).json()
    clock.seconds = 601.0  # ten minutes and a second without work

    assert worker.run() == 0

    assert all(array.is_deleted() for array in first_arrays)
    live_ids = {id(array) for array in jax.live_arrays()}
    assert not any(id(array) in live_ids for array in first_arrays)
    assert holder.load_count == 2 and holder.last_load_seconds is not None
    done = requests.get(f"{live_server.url}/api/v1/jobs/{job['id']}", timeout=10).json()
    assert done["status"] == "done", done


def test_up_passes_the_gpu_sharing_flags_on_to_its_worker():
    from dalleq.up import gpu_sharing_arguments

    assert gpu_sharing_arguments(None, None, None, False) == []
    assert gpu_sharing_arguments(2.5, QuietHours.parse("23:00-07:00"), "steam", True) == [
        "--idle-unload", "2.5", "--quiet-hours", "23:00-07:00", "--yield-to", "steam",
        "--yield-to-gpu"]


# -- the real server hears the pause ------------------------------------------------------------
def test_the_real_server_shows_a_paused_worker_with_its_reason_then_idle(tmp_path, live_server,
                                                                          jax_numpy):
    """The worker's state reports and the server's endpoint agree: while `steam` runs the queue
    page says "paused: GPU busy: steam is running", and after it the worker is idle again."""
    from worker.model_holder import ModelHolder

    clock = Clock()
    stop = ClockedStop(clock)
    page_while_held: list[str] = []
    script = Scripted([{"steam"}, {"steam"}, set(), set()], stop)

    def running_names():
        if len(script.answers) == 3:  # the hold's second check: its first report has been sent
            page_while_held.append(requests.get(live_server.url + "/", timeout=10).text)
        return script()

    worker = paused_worker(
        tmp_path, live_server.url,
        lambda _stop: Availability(yield_to_names="steam", running_names=running_names),
        ModelHolder(HeldModel, HeldModel()), stop, clock)
    assert worker.run() == 0
    assert "paused: GPU busy: steam is running" in page_while_held[0]
    workers = requests.get(live_server.url + "/api/v1/workers", timeout=10).json()["workers"]
    assert [(view["worker"], view["status"], view["reason"]) for view in workers] == [
        ("box", "idle", None)]
