"""Live previews (shared/API-1.1.md): the worker's preview post, the job object's preview fields,
the preview file served while the job runs and dropped when it ends."""

import io
from datetime import timedelta

import pytest
import requests
from PIL import Image

from server import defaults
from server.clock import utcnow
from tests.conftest import WORKER_TOKEN, WorkerActions
from tests.helpers import png_bytes

RED, BLUE = (255, 0, 0), (0, 0, 255)


def image_bytes(color=RED, image_format="WEBP", side=96) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), color).save(buffer, format=image_format)
    return buffer.getvalue()


def post_preview(worker, job_id, lease, steps=32, image=None):
    data = {"lease": lease, "steps": str(steps)}
    if image is not False:
        data["image"] = (io.BytesIO(image if image is not None else image_bytes()), "preview")
    return worker.client.post(
        f"/api/v1/worker/jobs/{job_id}/preview", data=data, headers=worker.headers,
        content_type="multipart/form-data",
    )


@pytest.fixture
def running(client, worker):
    """A claimed job and its lease."""
    client.post("/api/v1/jobs", json={"prompt": "a lighthouse at dusk", "grid": 1})
    return worker.claim_one()


def previews_dir(tmp_path):
    return tmp_path / "data" / "previews"


def shown_color(client, url):
    with client.get(url) as response:
        assert response.status_code == 200
        assert "no-cache" in response.headers["Cache-Control"]
        return Image.open(io.BytesIO(response.data)).convert("RGB").getpixel((48, 48)), response


@pytest.mark.parametrize("image_format, media_type", [
    ("WEBP", "image/webp"), ("JPEG", "image/jpeg"), ("PNG", "image/png"),
])
def test_a_preview_answers_like_a_heartbeat_and_is_served_while_running(
    app, client, worker, running, image_format, media_type
):
    job, lease = running
    before = app.extensions["dalleq"].catalog.get(job["id"])["lease_expires_at"]
    response = post_preview(worker, job["id"], lease, 64, image_bytes(BLUE, image_format))
    assert response.status_code == 200
    assert set(response.json) == {"lease_expires_at", "cancel_requested"}
    assert response.json["cancel_requested"] is False
    assert app.extensions["dalleq"].catalog.get(job["id"])["lease_expires_at"] >= before
    shown = client.get(f"/api/v1/jobs/{job['id']}").json
    assert shown["preview_steps"] == 64 and shown["preview_url"].startswith(
        f"/files/{job['id']}/preview")
    color, served = shown_color(client, shown["preview_url"])
    assert served.mimetype == media_type
    assert color[2] > 200 and color[0] < 50


def test_a_preview_reports_a_cancel_like_a_heartbeat(client, worker, running):
    job, lease = running
    client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert post_preview(worker, job["id"], lease).json["cancel_requested"] is True


def test_a_newer_preview_replaces_the_last_and_an_older_one_does_not(client, worker, running):
    job, lease = running
    post_preview(worker, job["id"], lease, 32, image_bytes(RED))
    first_url = client.get(f"/api/v1/jobs/{job['id']}").json["preview_url"]
    assert post_preview(worker, job["id"], lease, 96, image_bytes(BLUE)).status_code == 200
    newer = client.get(f"/api/v1/jobs/{job['id']}").json
    assert newer["preview_steps"] == 96 and newer["preview_url"] != first_url
    assert shown_color(client, newer["preview_url"])[0] == BLUE
    late = post_preview(worker, job["id"], lease, 64, image_bytes(RED))
    assert late.status_code == 200  # still a heartbeat
    assert client.get(f"/api/v1/jobs/{job['id']}").json["preview_steps"] == 96
    assert shown_color(client, newer["preview_url"])[0] == BLUE


def test_a_job_without_a_preview_has_none(client, worker, running):
    job, _ = running
    shown = client.get(f"/api/v1/jobs/{job['id']}").json
    assert shown["preview_url"] is None and shown["preview_steps"] is None
    assert client.get(f"/files/{job['id']}/preview").status_code == 404


def _bomb_png():
    return png_bytes(1)[:16] + (60000).to_bytes(4, "big") * 2 + png_bytes(1)[24:]


@pytest.mark.parametrize("image, code", [
    (b"GIF89a not an image", "invalid_image"),
    (image_bytes(image_format="GIF"), "invalid_image"),
    (image_bytes(image_format="JPEG")[:-200], "invalid_image"),
    (image_bytes(image_format="PNG")[:-30], "invalid_image"),
    (b"", "invalid_image"),
    (_bomb_png(), "invalid_image"),
    (image_bytes(side=defaults.PREVIEW_MAX_SIDE_PIXELS + 1), "invalid_image_size"),
    (False, "missing_image"),
])
def test_bad_preview_images_are_400_and_change_nothing(
    client, worker, running, tmp_path, image, code
):
    job, lease = running
    response = post_preview(worker, job["id"], lease, 32, image)
    assert response.status_code == 400 and response.json["error"]["code"] == code
    assert client.get(f"/api/v1/jobs/{job['id']}").json["preview_url"] is None
    assert not previews_dir(tmp_path).exists() or not any(previews_dir(tmp_path).iterdir())


@pytest.mark.parametrize("steps", [-1, 257, "half", "", "1.5"])
def test_bad_steps_are_400(client, worker, running, steps):
    job, lease = running
    response = post_preview(worker, job["id"], lease, steps)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_steps"


def test_a_preview_over_a_megabyte_is_413_over_http(live_server):
    url, auth = live_server.url, {"Authorization": f"Bearer {WORKER_TOKEN}"}
    job = requests.post(f"{url}/api/v1/jobs", json={"prompt": "x", "grid": 1}).json()
    (claimed,) = requests.post(f"{url}/api/v1/worker/claim", headers=auth,
                               json={"worker": "w", "models": ["mini"]}).json()["jobs"]
    too_large = image_bytes(image_format="PNG") + b"\0" * defaults.PREVIEW_MAX_BYTES
    response = requests.post(
        f"{url}/api/v1/worker/jobs/{job['id']}/preview", headers=auth,
        data={"lease": claimed["lease"], "steps": "32"},
        files={"image": ("preview.png", too_large, "image/png")},
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert requests.get(f"{url}/api/v1/jobs/{job['id']}").json()["preview_url"] is None


def test_a_preview_with_a_stale_lease_is_409_and_stores_nothing(client, worker, running, tmp_path):
    job, lease = running
    response = post_preview(worker, job["id"], lease + "x")
    assert response.status_code == 409 and response.json["error"]["code"] == "stale_lease"
    assert client.get(f"/api/v1/jobs/{job['id']}").json["preview_url"] is None
    assert not previews_dir(tmp_path).exists() or not any(previews_dir(tmp_path).iterdir())
    assert post_preview(worker, "no-such-job", lease).status_code == 404


def test_a_preview_with_an_expired_lease_is_409(app, client, worker):
    client.post("/api/v1/jobs", json={"prompt": "a lighthouse", "grid": 1})
    queue = app.extensions["dalleq"].queue
    (claimed,) = queue.claim("test-worker", ["mini"], now=utcnow() - timedelta(seconds=121))
    response = post_preview(worker, claimed["id"], claimed["lease"])
    assert response.status_code == 409 and "expired" in response.json["error"]["message"]


def _done(worker, job, lease):
    assert worker.post_result(job["id"], lease, 1).status_code == 200


def _failed(worker, job, lease):
    assert worker.fail(job["id"], lease, retryable=False).status_code == 200


def _requeued(worker, job, lease):
    assert worker.fail(job["id"], lease, retryable=True).json["status"] == "queued"


def _canceled(worker, job, lease):
    worker.client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert worker.post_result(job["id"], lease, 1).json["status"] == "canceled"


def _expired(worker, job, lease):
    queue = worker.client.application.extensions["dalleq"].queue
    assert queue.expire(now=utcnow() + timedelta(seconds=500)) == 1


def _deleted(worker, job, lease):
    assert worker.client.delete(f"/api/v1/jobs/{job['id']}").status_code in (200, 204)


@pytest.mark.parametrize("end", [_done, _failed, _requeued, _canceled, _expired, _deleted])
def test_the_preview_is_dropped_when_the_job_stops_running(client, worker, running, tmp_path, end):
    job, lease = running
    post_preview(worker, job["id"], lease)
    preview_url = client.get(f"/api/v1/jobs/{job['id']}").json["preview_url"]
    assert len(list(previews_dir(tmp_path).iterdir())) == 1
    end(worker, job, lease)
    assert list(previews_dir(tmp_path).iterdir()) == []
    assert client.get(preview_url).status_code == 404
    shown = client.get(f"/api/v1/jobs/{job['id']}")
    if shown.status_code == 200:
        assert shown.json["preview_url"] is None and shown.json["preview_steps"] is None


def test_previews_need_the_worker_token_and_the_preview_file_a_login(settings):
    from server import create_app

    app = create_app(settings.replace(password="a password"))
    client = app.test_client()
    assert post_preview(WorkerActions(client, "wrong"), "x", "y").status_code == 401
    assert client.get("/files/x/preview").status_code in (302, 303, 401)
    app.extensions["dalleq"].engine.dispose()
