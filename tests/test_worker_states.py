"""Each worker's state on the queue page (issue 19): POST /api/v1/worker/status, its storage
(server/worker_states.py, one row per worker on every backend), GET /api/v1/workers and the
"Workers" list of `/`, through the test client and a real server.
"""

from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from server import worker_states
from server.clock import utcnow
from server.validation import DEFAULT_PARAMS
from tests.conftest import WORKER_TOKEN

AUTH = {"Authorization": f"Bearer {WORKER_TOKEN}"}
PAUSED = {"worker": "gpu-box", "state": "paused", "reason": "GPU busy (steam is running)"}


def report(client, body, headers=AUTH):
    return client.post("/api/v1/worker/status", json=body, headers=headers)


# -- the endpoint ----------------------------------------------------------------------------
def test_a_report_answers_what_was_stored(client):
    response = report(client, {**PAUSED, "models": ["mini", "mega"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.json
    assert {key: answer[key] for key in ("worker", "state", "reason", "models")} == {
        **PAUSED, "models": ["mini", "mega"]}
    assert answer["reported_at"].endswith("Z")
    idle = report(client, {"worker": " gpu-box ", "state": "idle", "reason": None}).json
    assert (idle["worker"], idle["state"], idle["reason"], idle["models"]) == (
        "gpu-box", "idle", None, None)


@pytest.mark.parametrize(
    "body, code",
    [
        ({"state": "idle"}, "invalid_worker"),
        ({"worker": "", "state": "idle"}, "invalid_worker"),
        ({"worker": 7, "state": "idle"}, "invalid_worker"),
        ({"worker": "w" * 101, "state": "idle"}, "invalid_worker"),
        ({"worker": "w"}, "invalid_state"),
        ({"worker": "w", "state": "asleep"}, "invalid_state"),
        ({"worker": "w", "state": ["idle"]}, "invalid_state"),
        ({"worker": "w", "state": "paused"}, "invalid_reason"),
        ({"worker": "w", "state": "paused", "reason": None}, "invalid_reason"),
        ({"worker": "w", "state": "paused", "reason": "   "}, "invalid_reason"),
        ({"worker": "w", "state": "paused", "reason": "r" * 201}, "invalid_reason"),
        ({"worker": "w", "state": "paused", "reason": 3}, "invalid_reason"),
        ({"worker": "w", "state": "idle", "reason": "bad\x07bell"}, "invalid_reason"),
        ({"worker": "w", "state": "idle", "models": []}, "invalid_models"),
        ({"worker": "w", "state": "idle", "models": "mini"}, "invalid_models"),
        ({"worker": "w", "state": "idle", "models": ["no spaces"]}, "invalid_models"),
    ],
)
def test_each_bad_field_is_a_400_naming_it(client, body, code):
    response = report(client, body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code
    assert code.removeprefix("invalid_") in response.json["error"]["message"]


def test_a_body_that_is_not_an_object_is_a_400(client):
    response = client.post("/api/v1/worker/status", data="[1]", headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_body"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_a_bad_worker_token_is_a_401(client, headers):
    response = report(client, PAUSED, headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "bad_worker_token"
    assert client.get("/api/v1/workers").json["workers"] == []


# -- storage, on every backend -----------------------------------------------------------------
def test_reports_upsert_one_row_per_worker(queue):
    now = utcnow()
    with queue.engine.begin() as connection:
        worker_states.record_state(connection, "gpu-box", "idle", None, ["mini"], now)
        worker_states.record_state(connection, "gpu-box", "paused", "GPU busy", None, now)
        worker_states.record_state(connection, "laptop", "idle", None, None, now)
    with queue.engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(worker_states.states)
        ).scalar_one()
    assert count == 2
    views = {view.worker: view for view in worker_states.worker_views(queue.engine, now=now)}
    assert (views["gpu-box"].status, views["gpu-box"].reason) == ("paused", "GPU busy")
    assert views["gpu-box"].models is None  # the latest report sent none
    assert views["laptop"].status == "idle"


def test_what_each_worker_is_shown_doing(queue):
    now = utcnow()
    queue.submit(dict(DEFAULT_PARAMS, prompt="a fox", model="mini", grid=1, seed=1))
    with queue.engine.begin() as connection:
        worker_states.record_state(connection, "busy", "paused", "GPU busy", None, now)
        worker_states.record_state(connection, "stale", "idle", None, None, now)
    queue.claim_waiting("busy", ["mini"], now=now)  # a running job wins over what it said
    queue.claim_waiting("old", ["mini"], now=now)  # claims, never reports: an older worker
    later = now + timedelta(minutes=12)
    views = {view.worker: view for view in worker_states.worker_views(queue.engine, now=later)}
    assert views["busy"].status == "working" and views["busy"].running_jobs == 1
    assert views["busy"].reason is None
    assert views["stale"].status == "gone"  # reported 12 min ago, WORKER_SEEN_MINUTES is 10
    assert views["old"].status == "gone"
    assert worker_states.words(views["stale"], later) == f"not seen since {now:%H:%M} UTC"
    soon = {v.worker: v for v in worker_states.worker_views(queue.engine, now=now)}
    assert worker_states.words(soon["old"], now + timedelta(minutes=2)) == (
        "asked for jobs 2 min ago")
    next_day = now + timedelta(hours=25)
    assert [v.worker for v in worker_states.worker_views(queue.engine, now=next_day)] == ["busy"]


# -- the page ------------------------------------------------------------------------------------
def test_the_queue_page_lists_workers_and_their_states(client):
    assert 'data-worker-states hidden' in client.get("/").get_data(as_text=True)
    report(client, PAUSED)
    report(client, {"worker": "laptop", "state": "idle"})
    client.post("/api/v1/worker/claim", json={"worker": "old-box", "models": ["mini"]},
                headers=AUTH)
    page = client.get("/").get_data(as_text=True)
    assert "paused: GPU busy (steam is running)" in page
    assert '<span class="worker-name">laptop</span> · <span class="worker-state">idle</span>' in page
    assert "asked for jobs just now" in page
    listed = client.get("/api/v1/workers").json
    assert [(w["worker"], w["status"]) for w in listed["workers"]] == [
        ("gpu-box", "paused"), ("laptop", "idle"), ("old-box", "asked")]
    assert listed["seen_minutes"] == 10


def test_a_report_over_real_http_shows_on_the_queue_page(live_server):
    response = requests.post(
        f"{live_server.url}/api/v1/worker/status", json=PAUSED, headers=AUTH, timeout=10
    )
    assert response.status_code == 200, response.text
    page = requests.get(f"{live_server.url}/", timeout=10).text
    assert (
        '<span class="worker-name">gpu-box</span> · '
        '<span class="worker-state">paused: GPU busy (steam is running)</span>'
    ) in page
