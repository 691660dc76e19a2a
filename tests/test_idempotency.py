"""Idempotency-Key on submit and rerun (shared/API-1.1.md): a retry never queues twice.

The API through the Flask test client, the pages' per-render form keys, and the queue verb on
every backend: expiry, cleaning, and two requests racing with one key (threads, each with its own
engine, as two server processes would be, against a real database file).
"""

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server import db
from server.clock import utcnow
from server.config import Settings
from server.errors import KeyReused
from server.idempotency import SUBMIT_SCOPE, submission_key
from server.models import idempotency_keys_table, jobs_table
from server.queue import JobQueue
from server.validation import DEFAULT_PARAMS

RACING_THREADS = 8


def submit(client, key, **body):
    body.setdefault("prompt", "a watercolor fox")
    return client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})


def job_ids(client) -> list[str]:
    return [job["id"] for job in client.get("/api/v1/jobs").json["jobs"]]


# -- the API ----------------------------------------------------------------------------------
def test_the_same_key_and_body_return_the_same_job(client):
    first = submit(client, "retry-1", grid=2)
    again = submit(client, "retry-1", grid=2)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.json["position"] == 1
    assert job_ids(client) == [first.json["id"]]


def test_the_body_is_compared_by_content_not_by_its_bytes(client):
    first = client.post(
        "/api/v1/jobs", data='{"prompt": "an owl", "grid": 1}',
        content_type="application/json", headers={"Idempotency-Key": "k"},
    )  # fmt: skip
    again = client.post(
        "/api/v1/jobs", data='{"grid":1,"prompt":"an owl"}',
        content_type="application/json", headers={"Idempotency-Key": "k"},
    )  # fmt: skip
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]


def test_the_same_key_with_another_body_is_refused(client):
    first = submit(client, "k1", prompt="a fox")
    reused = submit(client, "k1", prompt="an owl")
    assert reused.status_code == 422
    assert reused.json["error"]["code"] == "idempotency_key_reused"
    assert job_ids(client) == [first.json["id"]]


def test_a_replay_shows_the_job_as_it_is_now(client, worker):
    submit(client, "k1")
    worker.claim_one()
    again = submit(client, "k1")
    assert again.status_code == 200
    assert again.json["status"] == "running" and again.json["position"] is None


def test_without_a_key_every_submit_queues(client):
    client.post("/api/v1/jobs", json={"prompt": "a fox"})
    client.post("/api/v1/jobs", json={"prompt": "a fox"})
    assert len(job_ids(client)) == 2


def test_rerun_with_a_key_queues_one_rerun(client):
    parent = client.post("/api/v1/jobs", json={"prompt": "a fox"}).json
    path = f"/api/v1/jobs/{parent['id']}/rerun"
    first = client.post(path, json={"seed": "new"}, headers={"Idempotency-Key": "r1"})
    again = client.post(path, json={"seed": "new"}, headers={"Idempotency-Key": "r1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"] and again.json["parent_id"] == parent["id"]
    assert len(job_ids(client)) == 2


def test_a_key_is_bound_to_its_endpoint_and_parent(client):
    first = submit(client, "k1", prompt="a fox").json
    other = client.post("/api/v1/jobs", json={"prompt": "an owl"}).json
    rerun = client.post(f"/api/v1/jobs/{first['id']}/rerun", json={}, headers={"Idempotency-Key": "k1"})
    assert rerun.status_code == 422
    client.post(f"/api/v1/jobs/{first['id']}/rerun", json={}, headers={"Idempotency-Key": "r"})
    elsewhere = client.post(
        f"/api/v1/jobs/{other['id']}/rerun", json={}, headers={"Idempotency-Key": "r"}
    )
    assert elsewhere.status_code == 422


@pytest.mark.parametrize(
    "key", ["", "x" * 201, "caf\u00e9", "tab\there", "bell\x07", "del\x7f"],
    ids=["empty", "too-long", "not-ascii", "tab", "control", "delete"],
)  # fmt: skip
def test_a_malformed_key_gets_a_clear_400(client, key):
    response = submit(client, key)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_idempotency_key"
    assert "Idempotency-Key" in response.json["error"]["message"]
    assert job_ids(client) == []


def test_a_key_of_200_printable_characters_is_accepted(client):
    key = ("~ azAZ09!" * 30)[:200]
    assert submit(client, key).status_code == 201
    assert submit(client, key).status_code == 200


def test_a_key_used_on_a_bad_request_stays_free(client):
    assert submit(client, "k1", prompt="").status_code == 400
    assert submit(client, "k1", prompt="a fox").status_code == 201


# -- the pages --------------------------------------------------------------------------------
def hidden(page: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]*)"', page)


def test_the_submit_form_sent_twice_queues_one_job(client):
    page = client.get("/").get_data(as_text=True)
    (key,) = hidden(page, "idempotency_key")
    form = {"csrf_token": hidden(page, "csrf_token")[0], "idempotency_key": key,
            "prompt": "a double tap", "grid": "2"}  # fmt: skip
    first = client.post("/jobs", data=form)
    again = client.post("/jobs", data=form)
    assert first.status_code == again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    assert len(job_ids(client)) == 1
    next_page = client.get("/").get_data(as_text=True)
    assert hidden(next_page, "idempotency_key") != [key], "every rendering has its own key"


def test_a_sent_form_changed_and_sent_again_is_shown_again(client):
    page = client.get("/").get_data(as_text=True)
    form = {"csrf_token": hidden(page, "csrf_token")[0],
            "idempotency_key": hidden(page, "idempotency_key")[0], "prompt": "a fox"}  # fmt: skip
    client.post("/jobs", data=form)
    response = client.post("/jobs", data=dict(form, prompt="an owl, typed after going back"))
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "already sent with other values" in text and "an owl, typed after going back" in text
    assert hidden(text, "idempotency_key") != [form["idempotency_key"]]
    assert len(job_ids(client)) == 1


def test_each_rerun_form_sent_twice_queues_one_rerun(client):
    parent = client.post("/api/v1/jobs", json={"prompt": "a fox"}).json
    page = client.get(f"/jobs/{parent['id']}").get_data(as_text=True)
    keys = hidden(page, "idempotency_key")
    assert len(keys) == len(set(keys)) == 3  # new seeds, same seed, edited prompt
    form = {"csrf_token": hidden(page, "csrf_token")[0], "idempotency_key": keys[0], "seed": "new"}
    first = client.post(f"/jobs/{parent['id']}/rerun", data=form)
    again = client.post(f"/jobs/{parent['id']}/rerun", data=form)
    assert first.status_code == again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    assert len(job_ids(client)) == 2


# -- the queue verb, on every backend ---------------------------------------------------------
def fields(prompt="a fox", seed=1):
    return dict(DEFAULT_PARAMS, prompt=prompt, model="mini", grid=1, seed=seed)


def key_for(key: str, prompt="a fox"):
    return submission_key(key, SUBMIT_SCOPE, {"prompt": prompt})


def open_queue(database_url) -> JobQueue:
    """A JobQueue with its own engine, connected once so that its first call starts at once."""
    engine = db.make_engine(database_url)
    engine.connect().close()
    return JobQueue(engine, Settings(database_url=database_url))


def count(queue, table) -> int:
    with queue.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_key_returns_its_job_for_24_hours_then_is_ignored_and_cleaned(queue):
    start = utcnow()
    job, is_created = queue.submit_once(fields(), key_for("k"), now=start)
    assert is_created
    day_later = start + timedelta(hours=24)
    again, is_created = queue.submit_once(fields(seed=2), key_for("k"), now=day_later)
    assert not is_created and again["id"] == job["id"] and again["seed"] == 1
    queue.submit_once(fields(), key_for("old"), now=start)
    expired = day_later + timedelta(seconds=1)
    fresh, is_created = queue.submit_once(fields(), key_for("k"), now=expired)
    assert is_created and fresh["id"] != job["id"]
    assert count(queue, idempotency_keys_table) == 1, "the expired keys are deleted"
    # An expired key is free for another request too.
    assert queue.submit_once(fields(), key_for("old", "an owl"), now=expired)[1]


def test_another_request_under_a_live_key_raises(queue):
    queue.submit_once(fields(), key_for("k"))
    with pytest.raises(KeyReused):
        queue.submit_once(fields(), key_for("k", prompt="an owl"))


def test_deleting_the_job_frees_its_key(queue):
    job, _ = queue.submit_once(fields(), key_for("k"))
    queue.delete(job["id"])
    assert count(queue, idempotency_keys_table) == 0
    again, is_created = queue.submit_once(fields(), key_for("k"))
    assert is_created and again["id"] != job["id"]


def test_requests_racing_with_one_key_make_one_job(queue, database_url):
    """Each thread has its own engine and JobQueue (its own write lock), as separate server
    processes would; they start together, so several find the key unused and race to insert it."""
    queues = [open_queue(database_url) for _ in range(RACING_THREADS)]
    start = threading.Barrier(RACING_THREADS)
    results, errors = [], []

    def submit_once(racer: JobQueue):
        start.wait()
        try:
            results.append(racer.submit_once(fields(), key_for("race")))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=submit_once, args=(racer,)) for racer in queues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for racer in queues:
        racer.engine.dispose()
    assert errors == []
    assert len({job["id"] for job, _ in results}) == 1
    assert [is_created for _, is_created in results].count(True) == 1
    assert count(queue, jobs_table) == 1
    assert count(queue, idempotency_keys_table) == 1
