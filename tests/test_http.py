"""The real server over real HTTP on 127.0.0.1: the whole loop, restarts, limits, the CLI."""

import signal
import subprocess
import sys
import threading

import requests

from server.long_polls import slots_for_threads
from tests.conftest import WORKER_TOKEN
from tests.helpers import REPO, ServerProcess, png_bytes, result_files, wait_for

AUTH = {"Authorization": f"Bearer {WORKER_TOKEN}"}


def test_the_whole_loop_over_http(live_server):
    url = live_server.url
    job = requests.post(f"{url}/api/v1/jobs", json={"prompt": "a fox", "grid": 2}).json()
    claim = requests.post(f"{url}/api/v1/worker/claim", headers=AUTH,
                          json={"worker": "http-test", "models": ["mini"], "wait": 5})
    (claimed,) = claim.json()["jobs"]
    lease = claimed["lease"]
    beat = requests.post(f"{url}/api/v1/worker/jobs/{job['id']}/heartbeat", headers=AUTH,
                         json={"lease": lease, "progress": 0.5})
    assert beat.status_code == 200
    assert requests.get(f"{url}/api/v1/jobs/{job['id']}").json()["progress"] == 0.5
    posted = requests.post(f"{url}/api/v1/worker/jobs/{job['id']}/result", headers=AUTH,
                           data={"lease": lease}, files=result_files(2))
    assert posted.status_code == 200 and posted.json()["status"] == "done"
    tile = requests.get(url + posted.json()["image_urls"][3])
    assert tile.status_code == 200 and tile.content.startswith(b"\x89PNG")


def test_a_restart_loses_no_acknowledged_job(tmp_path):
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN}).start()
    try:
        acknowledged = []
        for index in range(25):
            response = requests.post(f"{server.url}/api/v1/jobs", json={"prompt": f"job {index}"})
            assert response.status_code == 201
            acknowledged.append(response.json()["id"])
        server.stop(signal.SIGKILL)  # no clean shutdown: only what was committed survives
        server.start()
        listed = requests.get(f"{server.url}/api/v1/jobs?limit=100").json()["jobs"]
        assert sorted(job["id"] for job in listed) == sorted(acknowledged)
        assert all(job["status"] == "queued" for job in listed)
    finally:
        server.stop()


def test_oversized_upload_is_413_json_over_http(tmp_path):
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN},
                           extra_args=["--max-upload-mb", "1"]).start()
    try:
        job = requests.post(f"{server.url}/api/v1/jobs", json={"prompt": "x", "grid": 1}).json()
        (claimed,) = requests.post(f"{server.url}/api/v1/worker/claim", headers=AUTH,
                                   json={"worker": "w", "models": ["mini"]}).json()["jobs"]
        huge = png_bytes(256) + b"\0" * (2 * 2**20)
        response = requests.post(
            f"{server.url}/api/v1/worker/jobs/{job['id']}/result", headers=AUTH,
            data={"lease": claimed["lease"]}, files=result_files(1, tiles=[huge]))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"
        assert requests.get(f"{server.url}/api/v1/jobs/{job['id']}").json()["status"] == "running"
    finally:
        server.stop()


def test_pages_answer_while_more_long_polls_wait_than_there_are_threads(tmp_path):
    thread_count = 8
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN},
                           extra_args=["--threads", str(thread_count)]).start()
    slot_count = slots_for_threads(thread_count)
    poll_count = thread_count + 4
    statuses = []

    def long_poll(index):
        try:
            response = requests.post(f"{server.url}/api/v1/worker/claim", headers=AUTH, timeout=120,
                                     json={"worker": f"w{index}", "models": ["mini"], "wait": 30})
            statuses.append(response.status_code)
        except requests.RequestException as error:  # the server stopped under it: a failed test
            statuses.append(repr(error))

    polls = [threading.Thread(target=long_poll, args=(i,)) for i in range(poll_count)]
    try:
        for poll in polls:
            poll.start()
        # Those beyond the cap answer at once (without it, all of them hold threads for 30 s).
        wait_for(lambda: statuses.count(204) == poll_count - slot_count, timeout_seconds=25,
                 message="the long polls beyond the cap to answer 204")
        # A person's page and API call get a thread (generous timeouts: this is not about speed).
        assert requests.get(f"{server.url}/", timeout=20).status_code == 200
        assert requests.get(f"{server.url}/api/v1/jobs", timeout=20).status_code == 200
        for index in range(slot_count):  # one job for each poll still waiting
            requests.post(f"{server.url}/api/v1/jobs", json={"prompt": f"job {index}"}, timeout=20)
        for poll in polls:
            poll.join(60)
        assert sorted(statuses) == [200] * slot_count + [204] * (poll_count - slot_count)
    finally:
        server.stop()


def test_serve_binds_loopback_and_prints_the_url(live_server):
    assert live_server.url.startswith("http://127.0.0.1:")
    assert "dalle-queue serving on http://127.0.0.1:" in live_server.output()
    assert "waitress" in live_server.output().lower() or requests.get(
        live_server.url + "/api/v1/jobs").headers.get("Server") == "dalle-queue"


def test_a_bad_setting_stops_the_server_with_a_clear_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dalleq", "serve", "--port", "0", "--db", str(tmp_path / "q.db")],
        cwd=REPO, env={"DALLEQ_LEASE_SECONDS": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "DALLEQ_LEASE_SECONDS must be a whole number >= 5, got 1" in result.stderr
