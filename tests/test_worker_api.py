"""The worker API (shared/API.md, "For workers"): token, claim, heartbeat, result, fail, leases."""

import io
import json
import threading
import time
from datetime import timedelta

import pytest
from PIL import Image

from server import create_app, long_polls
from server.clock import utcnow
from tests.conftest import WorkerActions
from tests.helpers import TILE, png_bytes


def submit(client, **body):
    body.setdefault("prompt", "a lighthouse at dusk")
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == 201
    return response.json


def queue_of(app):
    return app.extensions["dalleq"].queue


# -- auth --------------------------------------------------------------------------------------
WORKER_CALLS = [
    ("/api/v1/worker/claim", {"worker": "w", "models": ["mini"]}),
    ("/api/v1/worker/jobs/JOB/heartbeat", {"lease": "L", "progress": 0.1}),
    ("/api/v1/worker/jobs/JOB/fail", {"lease": "L", "error": "x", "retryable": False}),
    ("/api/v1/worker/jobs/JOB/result", None),
]


@pytest.mark.parametrize("path, body", WORKER_CALLS)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer "])
def test_missing_or_wrong_token_is_401_and_changes_nothing(client, worker, path, body, header):
    job = submit(client)
    headers = {"Authorization": header} if header else {}
    response = client.post(path.replace("JOB", job["id"]), json=body, headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "bad_worker_token"
    assert client.get(f"/api/v1/jobs/{job['id']}").json["status"] == "queued"


def test_worker_endpoints_refuse_everything_while_no_token_is_set(settings):
    client = create_app(settings.replace(worker_token=None)).test_client()
    submit(client)
    for token in ("", "None", "test-worker-token"):
        response = WorkerActions(client, token).claim()
        assert response.status_code == 401
        assert response.json["error"]["code"] == "no_worker_token"


def test_worker_token_works_regardless_of_the_app_password(settings):
    client = create_app(settings.replace(password="pw")).test_client()
    assert WorkerActions(client).claim().status_code == 204


# -- claim -------------------------------------------------------------------------------------
def test_claim_takes_the_oldest_queued_job_with_a_lease(client, worker):
    first, second = submit(client), submit(client)
    response = worker.claim()
    assert response.status_code == 200
    (claimed,) = response.json["jobs"]
    assert claimed["job"]["id"] == first["id"] and claimed["job"]["status"] == "running"
    assert claimed["job"]["started_at"] and claimed["job"]["position"] is None
    assert claimed["lease"] and claimed["lease_expires_at"].endswith("Z")
    assert client.get(f"/api/v1/jobs/{second['id']}").json["position"] == 1


def test_claim_only_takes_models_the_worker_runs(client, worker):
    mega = submit(client, model="mega")
    mini = submit(client, model="mini")
    job, _ = worker.claim_one(models=["mini"])
    assert job["id"] == mini["id"]
    assert worker.claim(models=["mini", "other"]).status_code == 204
    job, _ = worker.claim_one(models=["mini", "mega"])
    assert job["id"] == mega["id"]


def test_claim_batches_up_to_max_jobs_oldest_first(client, worker):
    ids = [submit(client)["id"] for _ in range(5)]
    response = worker.claim(max_jobs=3)
    claimed = response.json["jobs"]
    assert [c["job"]["id"] for c in claimed] == ids[:3]
    assert len({c["lease"] for c in claimed}) == 3
    assert [c["job"]["id"] for c in worker.claim(max_jobs=10).json["jobs"]] == ids[3:]


def test_claim_answers_204_when_nothing_is_queued(client, worker):
    response = worker.claim(wait=0)
    assert response.status_code == 204 and response.data == b""


class WatchedCondition(threading.Condition):
    """The queue's job_submitted condition, telling the test when a long poll starts waiting."""

    def __init__(self):
        super().__init__()
        self.is_waited_on = threading.Event()

    def wait(self, timeout=None):
        self.is_waited_on.set()
        return super().wait(timeout)


def test_long_poll_returns_as_soon_as_a_job_is_submitted(app, client, worker):
    submitted = queue_of(app).job_submitted = WatchedCondition()
    answers = []
    poll = threading.Thread(target=lambda: answers.append(worker.claim(wait=10)))
    poll.start()
    assert submitted.is_waited_on.wait(10), "the claim never started to wait"
    started = time.monotonic()
    app.test_client().post("/api/v1/jobs", json={"prompt": "late arrival"})
    poll.join(10)
    (response,) = answers
    assert response.status_code == 200
    assert response.json["jobs"][0]["job"]["prompt"] == "late arrival"
    assert time.monotonic() - started < 5  # woken by the submit, well before wait=10


def test_long_poll_gives_up_after_wait_seconds(worker):
    started = time.monotonic()
    assert worker.claim(wait=1).status_code == 204
    assert 0.9 < time.monotonic() - started < 4


@pytest.mark.parametrize("thread_count, slot_count", [(32, 24), (100, 75), (8, 4), (4, 0), (1, 0)])
def test_long_polls_leave_a_quarter_of_the_threads_and_at_least_four_free(thread_count, slot_count):
    assert long_polls.slots_for_threads(thread_count) == slot_count


def test_a_long_poll_beyond_the_cap_answers_at_once(app, client, worker):
    long_polls.install(app, thread_count=5)  # one slot
    submitted = queue_of(app).job_submitted = WatchedCondition()

    def held_poll(answers):
        poll = threading.Thread(
            target=lambda: answers.append(WorkerActions(app.test_client()).claim(wait=30)))
        poll.start()
        assert submitted.is_waited_on.wait(10), "the claim never started to wait"
        return poll

    for round_number in (1, 2):  # the second time, the slot the first poll held is free again
        submitted.is_waited_on.clear()
        answers = []
        poll = held_poll(answers)
        assert worker.claim(wait=30).status_code == 204  # the slot is taken: no wait
        assert poll.is_alive() and answers == []  # while the first one still waits
        submit(client, prompt=f"for the waiting poll {round_number}")
        poll.join(10)
        (response,) = answers
        assert response.json["jobs"][0]["job"]["prompt"] == f"for the waiting poll {round_number}"


@pytest.mark.parametrize("body, code", [
    ({"models": ["mini"]}, "invalid_worker"),
    ({"worker": "", "models": ["mini"]}, "invalid_worker"),
    ({"worker": "w" * 101, "models": ["mini"]}, "invalid_worker"),
    ({"worker": "w"}, "invalid_models"),
    ({"worker": "w", "models": []}, "invalid_models"),
    ({"worker": "w", "models": "mini"}, "invalid_models"),
    ({"worker": "w", "models": [3]}, "invalid_models"),
    ({"worker": "w", "models": ["mini"], "max_jobs": 0}, "invalid_max_jobs"),
    ({"worker": "w", "models": ["mini"], "wait": 31}, "invalid_wait"),
    ({"worker": "w", "models": ["mini"], "wait": -1}, "invalid_wait"),
    ({"worker": "w", "models": ["mini"], "wait": "long"}, "invalid_wait"),
    ({"worker": "w", "models": ["mini"], "wait": 10**400}, "invalid_wait"),
    ({"worker": "w", "models": ["mini"], "max_jobs": 10**400}, "invalid_max_jobs"),
])
def test_bad_claims_get_400(client, worker, body, code):
    submit(client)
    response = client.post("/api/v1/worker/claim", json=body, headers=worker.headers)
    assert response.status_code == 400 and response.json["error"]["code"] == code
    assert client.get("/api/v1/jobs").json["jobs"][0]["status"] == "queued"


# -- heartbeat ---------------------------------------------------------------------------------
def test_heartbeat_records_progress_and_extends_the_lease(app, client, worker):
    submit(client)
    (job,) = queue_of(app).claim("test-worker", ["mini"], now=utcnow() - timedelta(seconds=10))
    row_before = app.extensions["dalleq"].catalog.get(job["id"])
    response = worker.heartbeat(job["id"], job["lease"], 0.25)
    assert response.status_code == 200
    assert response.json["cancel_requested"] is False
    row_after = app.extensions["dalleq"].catalog.get(job["id"])
    assert row_after["lease_expires_at"] > row_before["lease_expires_at"]
    assert client.get(f"/api/v1/jobs/{job['id']}").json["progress"] == 0.25


@pytest.mark.parametrize("progress", [
    -0.1, 1.5, "half", None, True,
    pytest.param(10**400, id="huge"), pytest.param(-(10**400), id="-huge"),
])
def test_heartbeat_rejects_bad_progress(client, worker, progress):
    submit(client)
    job, lease = worker.claim_one()
    response = worker.client.post(
        f"/api/v1/worker/jobs/{job['id']}/heartbeat",
        json={"lease": lease, "progress": progress}, headers=worker.headers,
    )
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_progress"


def test_heartbeat_with_a_stale_lease_is_409_and_changes_nothing(client, worker):
    submit(client)
    job, lease = worker.claim_one()
    response = worker.heartbeat(job["id"], lease + "x", 0.9)
    assert response.status_code == 409 and response.json["error"]["code"] == "stale_lease"
    assert client.get(f"/api/v1/jobs/{job['id']}").json["progress"] == 0.0
    assert worker.heartbeat("no-such-job", lease).status_code == 404


# -- result ------------------------------------------------------------------------------------
def test_result_stores_grid_tiles_and_thumbnail_with_metadata(app, client, worker):
    submit(client, grid=2, seed=77, prompt="a red fox")
    job, lease = worker.claim_one()
    response = worker.post_result(job["id"], lease, 2)
    assert response.status_code == 200
    done = response.json
    assert done["status"] == "done" and done["progress"] == 1.0 and done["finished_at"]
    assert len(done["image_urls"]) == 4 and done["grid_url"] and done["thumb_url"]
    for index, url in enumerate(done["image_urls"]):
        with client.get(url) as tile:
            image = Image.open(io.BytesIO(tile.data))
            assert tile.mimetype == "image/png" and image.size == (TILE, TILE)
            assert image.text["prompt"] == "a red fox" and image.text["seed"] == "77"
            assert image.text["model"] == "mini" and image.text["tile"] == str(index)
            assert json.loads(image.text["params"])["top_k"] == 50
    with client.get(done["grid_url"]) as grid:
        image = Image.open(io.BytesIO(grid.data))
        assert image.size == (2 * TILE, 2 * TILE) and image.text["grid"] == "2"
    with client.get(done["thumb_url"]) as thumb:
        image = Image.open(io.BytesIO(thumb.data))
        assert image.format == "WEBP" and max(image.size) <= 384
        assert len(thumb.data) < 20_000
    rows = app.extensions["dalleq"].catalog.images(
        app.extensions["dalleq"].catalog.get(job["id"])["seq"]
    )
    assert sorted(row["kind"] for row in rows) == ["grid", "thumb", "tile", "tile", "tile", "tile"]


def test_download_link_names_the_file_after_the_prompt(client, worker):
    submit(client, grid=1, seed=5, prompt="A Red Fox!")
    job, lease = worker.claim_one()
    done = worker.post_result(job["id"], lease, 1).json
    with client.get(done["grid_url"] + "?download=1") as response:
        assert "attachment" in response.headers["Content-Disposition"]
        assert "a-red-fox-seed-5-grid.png" in response.headers["Content-Disposition"]


def test_posting_the_same_result_again_is_200_and_changes_nothing(client, worker, tmp_path):
    submit(client, grid=1)
    job, lease = worker.claim_one()
    first = worker.post_result(job["id"], lease, 1)
    folders = sorted((tmp_path / "data" / "jobs").iterdir())
    with client.get(first.json["grid_url"]) as grid:
        original = grid.data
    again = worker.post_result(job["id"], lease, 1, grid_png=png_bytes(TILE, (0, 255, 0)))
    assert again.status_code == 200 and again.json == first.json
    assert sorted((tmp_path / "data" / "jobs").iterdir()) == folders
    with client.get(first.json["grid_url"]) as grid:
        assert grid.data == original


def test_result_with_a_stale_lease_is_409_and_stores_nothing(app, client, worker, tmp_path):
    submit(client, grid=1)
    job, lease = worker.claim_one()
    response = worker.post_result(job["id"], "not-the-lease", 1)
    assert response.status_code == 409 and response.json["error"]["code"] == "stale_lease"
    assert client.get(f"/api/v1/jobs/{job['id']}").json["status"] == "running"
    assert not (tmp_path / "data" / "jobs").exists() or not any(
        (tmp_path / "data" / "jobs").iterdir())


def _corrupt_png():
    data = bytearray(png_bytes(TILE))
    data[60:80] = b"\0" * 20
    return bytes(data)


def _bomb_png():
    # A valid PNG header claiming 60000x60000 pixels: refused before any pixel is decoded.
    return png_bytes(1)[:16] + (60000).to_bytes(4, "big") * 2 + png_bytes(1)[24:]


@pytest.mark.parametrize("override, code", [
    ({"grid_png": b"GIF89a not a png"}, "invalid_image"),
    ({"grid_png": png_bytes(TILE)}, "invalid_image_size"),  # a 2x2 grid is 512x512
    ({"tiles": [png_bytes(128)]}, "invalid_image_size"),
    ({"tiles": [_corrupt_png()]}, "invalid_image"),
    ({"tiles": [png_bytes(TILE)[:-30]]}, "invalid_image"),
    ({"tiles": [_bomb_png()]}, "invalid_image"),
    ({"tiles": [b""]}, "invalid_image"),
])
def test_bad_uploads_are_400_and_leave_the_job_running(client, worker, override, code):
    grid = 2 if "grid_png" in override else 1
    submit(client, grid=grid)
    job, lease = worker.claim_one()
    response = worker.post_result(job["id"], lease, grid, **override)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == code
    assert client.get(f"/api/v1/jobs/{job['id']}").json["status"] == "running"
    assert worker.post_result(job["id"], lease, grid).status_code == 200  # a good retry lands


def test_a_jpeg_named_png_is_refused(client, worker):
    submit(client, grid=1)
    job, lease = worker.claim_one()
    buffer = io.BytesIO()
    Image.new("RGB", (TILE, TILE)).save(buffer, format="JPEG")
    response = worker.post_result(job["id"], lease, 1, tiles=[buffer.getvalue()])
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_image"


def test_missing_and_extra_tiles_are_400(client, worker):
    submit(client, grid=2)
    job, lease = worker.claim_one()

    def post_with_tiles(tile_count):
        data = {"lease": lease, "grid": (io.BytesIO(png_bytes(2 * TILE)), "grid.png")}
        for index in range(tile_count):
            data[f"image_{index}"] = (io.BytesIO(png_bytes(TILE)), "t.png")
        return client.post(f"/api/v1/worker/jobs/{job['id']}/result", data=data,
                           headers=worker.headers, content_type="multipart/form-data")

    missing = post_with_tiles(3)
    assert missing.status_code == 400 and missing.json["error"]["code"] == "missing_image"
    extra = post_with_tiles(5)
    assert extra.status_code == 400 and extra.json["error"]["code"] == "unexpected_image"


def test_result_without_a_lease_is_400(client, worker):
    submit(client, grid=1)
    job, _ = worker.claim_one()
    response = client.post(f"/api/v1/worker/jobs/{job['id']}/result", data={},
                           headers=worker.headers, content_type="multipart/form-data")
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_lease"


@pytest.mark.parametrize("meta", [
    "{", "[1]", "x" * 20000,
    pytest.param("[" * 16000, id="deeply-nested"),
    pytest.param('{"device": "\\ud800 gpu"}', id="lone-surrogate"),
    pytest.param('{"device": "gpu\\u0000"}', id="control-character"),
    pytest.param('{"\\udfff": 1}', id="lone-surrogate-key"),
    pytest.param('{"timings": {"steps": ["\\ud800"]}}', id="nested-surrogate"),
    pytest.param('{"a": ' * 40 + "1" + "}" * 40, id="too-deep"),
    pytest.param('{"seconds": NaN}', id="not-a-number"),
])
def test_bad_meta_is_400(client, worker, meta):
    submit(client, grid=1)
    job, lease = worker.claim_one()
    files = {"grid": (io.BytesIO(png_bytes(TILE)), "g.png"),
             "image_0": (io.BytesIO(png_bytes(TILE)), "t.png")}
    response = client.post(f"/api/v1/worker/jobs/{job['id']}/result",
                           data={"lease": lease, "meta": meta, **files}, headers=worker.headers,
                           content_type="multipart/form-data")
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_meta"


def test_client_file_names_never_become_paths(client, worker, tmp_path):
    submit(client, grid=1)
    job, lease = worker.claim_one()
    data = {"lease": lease,
            "grid": (io.BytesIO(png_bytes(TILE)), "../../../../tmp/evil-grid.png"),
            "image_0": (io.BytesIO(png_bytes(TILE)), "/etc/passwd")}
    response = client.post(f"/api/v1/worker/jobs/{job['id']}/result", data=data,
                           headers=worker.headers, content_type="multipart/form-data")
    assert response.status_code == 200
    stored = [p.name for p in (tmp_path / "data" / "jobs").rglob("*") if p.is_file()]
    assert sorted(stored) == ["grid.png", "thumb.webp", "tile_0.png"]
    for path in ("/files/../queue.db", f"/files/{job['id']}/..%2Fqueue.db",
                 f"/files/{job['id']}/tile_1.png", f"/files/{job['id']}/.secret_key"):
        assert client.get(path).status_code == 404


def test_result_meta_is_kept(app, client, worker):
    submit(client, grid=1)
    job, lease = worker.claim_one()
    files = {"grid": (io.BytesIO(png_bytes(TILE)), "g.png"),
             "image_0": (io.BytesIO(png_bytes(TILE)), "t.png")}
    meta = {"seconds": 3.5, "device": "cuda:0"}
    client.post(f"/api/v1/worker/jobs/{job['id']}/result",
                data={"lease": lease, "meta": json.dumps(meta), **files},
                headers=worker.headers, content_type="multipart/form-data")
    row = app.extensions["dalleq"].catalog.get(job["id"])
    assert json.loads(row["result_meta"]) == meta


# -- fail --------------------------------------------------------------------------------------
def test_retryable_failure_requeues_until_attempts_run_out(client, worker):
    job = submit(client)
    for attempt in (1, 2):
        claimed, lease = worker.claim_one()
        failed = worker.fail(claimed["id"], lease, f"network blip {attempt}", retryable=True)
        assert failed.status_code == 200
        assert failed.json["status"] == "queued" and failed.json["attempts"] == attempt
        assert failed.json["error"] == f"network blip {attempt}"
    claimed, lease = worker.claim_one()
    final = worker.fail(claimed["id"], lease, "network blip 3", retryable=True).json
    assert final["status"] == "failed" and final["attempts"] == 3 and final["finished_at"]
    assert final["id"] == job["id"] and worker.claim().status_code == 204


def test_non_retryable_failure_fails_at_once(client, worker):
    submit(client)
    job, lease = worker.claim_one()
    failed = worker.fail(job["id"], lease, "CUDA out of memory", retryable=False).json
    assert failed["status"] == "failed" and failed["error"] == "CUDA out of memory"


def test_fail_with_a_stale_lease_is_409(client, worker):
    submit(client)
    job, lease = worker.claim_one()
    assert worker.fail(job["id"], "old", "x").status_code == 409
    assert worker.fail(job["id"], lease, "x").status_code == 200
    assert worker.fail(job["id"], lease, "x").status_code == 409  # that lease is spent


@pytest.mark.parametrize("body, code", [
    ({"error": "x"}, "invalid_lease"),
    ({"lease": "L", "error": ""}, "invalid_error"),
    ({"lease": "L", "error": "x", "retryable": "yes"}, "invalid_retryable"),
])
def test_bad_fail_bodies_are_400(client, worker, body, code):
    submit(client)
    job, _ = worker.claim_one()
    response = client.post(f"/api/v1/worker/jobs/{job['id']}/fail", json=body,
                           headers=worker.headers)
    assert response.status_code == 400 and response.json["error"]["code"] == code


# -- leases ------------------------------------------------------------------------------------
def test_an_expired_lease_goes_back_to_the_queue_then_fails_after_max_attempts(app, client, worker):
    job = submit(client)
    queue = queue_of(app)
    for attempt in (1, 2, 3):
        claimed, lease = worker.claim_one()
        assert queue.expire(now=utcnow() + timedelta(seconds=121)) == 1
        row = client.get(f"/api/v1/jobs/{job['id']}").json
        assert row["attempts"] == attempt
        assert "lease expired: worker test-worker stopped reporting" in row["error"]
        assert row["status"] == ("failed" if attempt == 3 else "queued")
        # The worker that lost its lease can no longer touch the job.
        assert worker.heartbeat(job["id"], lease).status_code == 409
        assert worker.post_result(job["id"], lease, 3).status_code == 409
        assert worker.fail(job["id"], lease, "late").status_code == 409


def test_a_lease_kept_alive_by_heartbeats_does_not_expire(app, client, worker):
    submit(client)
    job, lease = worker.claim_one()
    queue = queue_of(app)
    later = utcnow() + timedelta(seconds=100)
    queue.heartbeat(job["id"], lease, 0.5, now=later)
    assert queue.expire(now=later + timedelta(seconds=100)) == 0
    assert queue.expire(now=later + timedelta(seconds=121)) == 1


def test_a_canceled_running_job_whose_lease_expires_ends_canceled(app, client, worker):
    submit(client)
    job, _ = worker.claim_one()
    client.post(f"/api/v1/jobs/{job['id']}/cancel")
    queue_of(app).expire(now=utcnow() + timedelta(seconds=121))
    assert client.get(f"/api/v1/jobs/{job['id']}").json["status"] == "canceled"


def test_a_lease_that_ran_out_is_409_even_when_no_claim_ran_since(app, client, worker):
    job = submit(client, grid=1)
    (claimed,) = queue_of(app).claim("test-worker", ["mini"], now=utcnow() - timedelta(seconds=121))
    lease = claimed["lease"]
    beat = worker.heartbeat(job["id"], lease)
    assert beat.status_code == 409 and beat.json["error"]["code"] == "stale_lease"
    assert "expired" in beat.json["error"]["message"]
    assert worker.post_result(job["id"], lease, 1).status_code == 409
    assert worker.fail(job["id"], lease, "late").status_code == 409
    assert client.get(f"/api/v1/jobs/{job['id']}").json["status"] in ("running", "queued")
    (again,) = worker.claim().json["jobs"]  # handed back, to be run again
    assert again["job"]["id"] == job["id"] and again["job"]["attempts"] == 1


def test_a_result_after_a_cancel_ends_the_job_canceled_without_images(client, worker, tmp_path):
    job = submit(client, grid=1)
    _claimed, lease = worker.claim_one()
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").json["status"] == "running"
    response = worker.post_result(job["id"], lease, 1)
    assert response.status_code == 200
    ended = response.json
    assert ended["status"] == "canceled" and ended["finished_at"]
    assert ended["grid_url"] is None and ended["image_urls"] == [] and ended["thumb_url"] is None
    assert client.get(f"/api/v1/jobs/{job['id']}").json == ended
    assert client.get(f"/files/{job['id']}/grid.png").status_code == 404
    jobs_dir = tmp_path / "data" / "jobs"
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())
    assert worker.post_result(job["id"], lease, 1).json == ended  # a repeat changes nothing
    assert worker.heartbeat(job["id"], lease).status_code == 409


def test_claim_hands_back_expired_leases_first(app, client, worker):
    submit(client)
    job, _ = worker.claim_one()
    queue = queue_of(app)
    later = utcnow() + timedelta(seconds=200)
    (again,) = queue.claim("second-worker", ["mini"], 1, now=later)
    assert again["id"] == job["id"] and again["attempts"] == 1 and again["worker"] == "second-worker"
