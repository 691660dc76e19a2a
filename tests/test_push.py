"""Web Push when a job ends (issue 18): a fake push service on 127.0.0.1 receives the encrypted
message, and the test decrypts it as the browser would (http_ece, aes128gcm) and reads it."""

import sqlite3
import threading
from datetime import timedelta

import requests

from server.clock import utcnow
from tests.conftest import WORKER_TOKEN
from tests.fake_push import HOLD_LIMIT_SECONDS, Browser, FakePushService, vapid_claims
from tests.helpers import ServerProcess, result_files, wait_for

WORKER = {"Authorization": f"Bearer {WORKER_TOKEN}"}
CONTACT = "mailto:owner@example.org"


def start_server(tmp_path) -> ServerProcess:
    env = {"DALLEQ_WORKER_TOKEN": WORKER_TOKEN, "DALLEQ_PUSH_CONTACT": CONTACT}
    return ServerProcess(tmp_path, env=env).start()


def subscribe(url: str, subscription: dict) -> requests.Response:
    return requests.post(f"{url}/api/v1/push/subscriptions", json=subscription, timeout=10)


def queue_and_claim(url: str, prompt: str) -> tuple[dict, str]:
    job = requests.post(f"{url}/api/v1/jobs", json={"prompt": prompt, "grid": 1, "seed": 42},
                        timeout=10).json()
    claim = requests.post(f"{url}/api/v1/worker/claim", headers=WORKER, timeout=10,
                          json={"worker": "w", "models": [job["model"]]})
    (claimed,) = claim.json()["jobs"]
    assert claimed["job"]["id"] == job["id"]
    return job, claimed["lease"]


def post_result(url: str, job_id: str, lease: str) -> requests.Response:
    return requests.post(f"{url}/api/v1/worker/jobs/{job_id}/result", headers=WORKER,
                         data={"lease": lease}, files=result_files(1), timeout=30)


def test_a_finished_job_sends_a_push_the_browser_decrypts(tmp_path):
    browser = Browser()
    with FakePushService() as push_service:
        server = start_server(tmp_path)
        try:
            public_key = requests.get(f"{server.url}/api/v1/push/key", timeout=10).json()
            subscription = browser.subscription(f"{push_service.url}/push/phone-1")
            assert subscribe(server.url, subscription).status_code == 201
            assert subscribe(server.url, subscription).status_code == 200  # already stored
            job, lease = queue_and_claim(server.url, "an armchair in the shape of an avocado")
            assert post_result(server.url, job["id"], lease).status_code == 200

            path, headers, body = push_service.next_push()
            thumbnail = requests.get(f"{server.url}/files/{job['id']}/thumb.webp", timeout=10)
        finally:
            server.stop()
    assert path == "/push/phone-1"
    message = browser.decrypt(body)
    assert message["title"] == "Done: an armchair in the shape of an avocado"
    assert message["body"] == "seed 42 · 1×1 grid"
    assert message["url"] == f"jobs/{job['id']}"
    assert message["image"] == message["icon"] == f"files/{job['id']}/thumb.webp"
    assert message["tag"] == job["id"]
    assert thumbnail.status_code == 200  # the image the notification shows is served
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["ttl"] == "86400"
    assert headers["urgency"] == "normal"
    claims = vapid_claims(headers["authorization"], public_key["public_key"])
    assert claims["sub"] == CONTACT
    assert claims["aud"] == push_service.url


def test_a_failed_job_pushes_its_reason_and_a_canceled_one_nothing(tmp_path):
    browser = Browser()
    with FakePushService() as push_service:
        server = start_server(tmp_path)
        try:
            subscribe(server.url, browser.subscription(f"{push_service.url}/push/laptop"))
            canceled, canceled_lease = queue_and_claim(server.url, "a job canceled as it runs")
            requests.post(f"{server.url}/api/v1/jobs/{canceled['id']}/cancel", timeout=10)
            requests.post(f"{server.url}/api/v1/worker/jobs/{canceled['id']}/heartbeat",
                          headers=WORKER, json={"lease": canceled_lease, "progress": 0.5}, timeout=10)
            requests.post(f"{server.url}/api/v1/worker/jobs/{canceled['id']}/fail",
                          headers=WORKER, json={"lease": canceled_lease, "error": "canceled"}, timeout=10)
            job, lease = queue_and_claim(server.url, "a fox that fails")
            answer = requests.post(
                f"{server.url}/api/v1/worker/jobs/{job['id']}/fail", headers=WORKER, timeout=10,
                json={"lease": lease, "error": "CUDA out of memory", "retryable": False},
            )
            assert answer.json()["status"] == "failed"
            _path, _headers, body = push_service.next_push()
        finally:
            server.stop()
    message = browser.decrypt(body)  # the first push is the failed job's: the canceled one sent none
    assert message["title"] == "Failed: a fox that fails"
    assert message["body"] == "CUDA out of memory"
    assert message["url"] == f"jobs/{job['id']}"
    assert push_service.received.empty()


def subscription_count(tmp_path) -> int:
    connection = sqlite3.connect(tmp_path / "queue.db")
    try:
        return connection.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0]
    finally:
        connection.close()


def test_a_subscription_the_push_service_says_is_gone_is_dropped(tmp_path):
    with FakePushService(status=410) as push_service:
        server = start_server(tmp_path)
        try:
            subscribe(server.url, Browser().subscription(f"{push_service.url}/push/old-phone"))
            assert subscription_count(tmp_path) == 1
            job, lease = queue_and_claim(server.url, "a push nobody hears")
            assert post_result(server.url, job["id"], lease).status_code == 200
            push_service.next_push()
            wait_for(lambda: subscription_count(tmp_path) == 0, message="the subscription dropped")
        finally:
            server.stop()
    assert push_service.received.empty()  # a 410 is not retried


def test_a_push_service_that_hangs_does_not_hold_up_results(app, client, worker):
    """Results are taken while the push service holds the sender's request open."""
    push = app.extensions["dalleq"].push
    push.timeout_seconds = HOLD_LIMIT_SECONDS * 2  # so only the fake's release ends the hold
    push.start()
    browser = Browser()
    try:
        with FakePushService() as push_service:
            push_service.is_holding = True
            client.post("/api/v1/push/subscriptions",
                        json=browser.subscription(f"{push_service.url}/push/slow"))
            first = client.post("/api/v1/jobs", json={"prompt": "first", "grid": 1}).json
            second = client.post("/api/v1/jobs", json={"prompt": "second", "grid": 1}).json
            first_job, first_lease = worker.claim_one()
            assert first_job["id"] == first["id"]
            assert worker.post_result(first["id"], first_lease, 1).json["status"] == "done"
            assert push_service.holding.wait(60), "the push for the first job never arrived"

            uploaded = threading.Event()  # the second upload runs while the push is held

            def upload_second():
                second_job, second_lease = worker.claim_one()
                answer = worker.post_result(second_job["id"], second_lease, 1)
                assert answer.json["status"] == "done"
                uploaded.set()

            thread = threading.Thread(target=upload_second)
            thread.start()
            assert uploaded.wait(HOLD_LIMIT_SECONDS / 2), "a held push held up the upload"
            assert not push_service.released.is_set()
            assert client.get(f"/api/v1/jobs/{second['id']}").json["status"] == "done"
            push_service.released.set()
            thread.join(10)
            _, _, first_body = push_service.next_push()
            _, _, second_body = push_service.next_push()
            assert browser.decrypt(first_body)["title"] == "Done: first"
            assert browser.decrypt(second_body)["title"] == "Done: second"
    finally:
        push.stop()


def test_a_lease_that_runs_out_on_the_last_attempt_pushes_the_failure(app, client, worker):
    services = app.extensions["dalleq"]
    services.queue.settings = services.queue.settings.replace(max_attempts=1)
    services.push.start()
    browser = Browser()
    try:
        with FakePushService() as push_service:
            client.post("/api/v1/push/subscriptions",
                        json=browser.subscription(f"{push_service.url}/push/phone"))
            job = client.post("/api/v1/jobs", json={"prompt": "a worker that vanished"}).json
            worker.claim_one()
            assert services.queue.expire(now=utcnow() + timedelta(hours=1)) == 1
            _, _, body = push_service.next_push()
    finally:
        services.push.stop()
    message = browser.decrypt(body)
    assert message["title"] == "Failed: a worker that vanished"
    assert message["body"] == "lease expired: worker test-worker stopped reporting"
    assert message["url"] == f"jobs/{job['id']}"
