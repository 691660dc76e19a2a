"""The worker API, /api/v1/worker (shared/API.md, "For workers"): claim, heartbeat, result, fail,
and preview (shared/API-1.1.md); and status, this server's addition (issue 19, docs/api.md).

Every call needs the bearer token. Leases make late or duplicate workers harmless: each verb in
server/queue.py checks the lease in its WHERE clause and answers 409 when it is not current.
"""

from flask import Blueprint, jsonify, request

from . import auth, defaults, long_polls, services, validation, worker_states
from .api_jobs import json_body
from .clock import iso, utcnow
from .errors import DalleqError, InvalidInput
from .images import check_png, check_preview
from .queue import Upload
from .serialize import job_json

bp = Blueprint("api_worker", __name__, url_prefix="/api/v1/worker")


@bp.before_request
def guard():
    auth.require_worker_token()


def claimed_json(job: dict) -> dict:
    return {
        "job": job_json(dict(job, position=None), request.script_root),
        "lease": job["lease"],
        "lease_expires_at": iso(job["lease_expires_at"]),
    }


@bp.post("/claim")
def claim():
    body = json_body()
    worker = validation.worker_name(body)
    models = validation.model_list(body)
    max_jobs = validation.as_int(body, "max_jobs", 1, defaults.CLAIM_MAX_JOBS, 1)
    wait_seconds = validation.as_float(body, "wait", 0.0)
    if not 0 <= wait_seconds <= defaults.CLAIM_MAX_WAIT_SECONDS:
        raise InvalidInput(
            f"wait must be from 0 to {defaults.CLAIM_MAX_WAIT_SECONDS} seconds", code="invalid_wait"
        )
    with long_polls.waiting_allowed() as may_wait:
        # Beyond the cap the claim answers at once, so a person's request always finds a thread.
        claimed = services().queue.claim_waiting(
            worker, models, max_jobs, wait_seconds if may_wait else 0.0
        )
    if not claimed:
        return "", 204
    return jsonify({"jobs": [claimed_json(job) for job in claimed]})


@bp.post("/status")
def status():
    """The worker says what it is doing (working, idle, paused and why), for the queue page."""
    body = json_body()
    worker = validation.worker_name(body)
    state = validation.worker_state(body)
    reason = validation.state_reason(body, state)
    models = validation.optional_model_list(body)
    with services().engine.begin() as connection:
        row = worker_states.record_state(connection, worker, state, reason, models, utcnow())
    return jsonify(worker_states.report_json(row))


def heartbeat_json(job: dict) -> dict:
    return {
        "lease_expires_at": iso(job["lease_expires_at"]),
        "cancel_requested": bool(job["cancel_requested"]),
    }


@bp.post("/jobs/<job_id>/heartbeat")
def heartbeat(job_id):
    body = json_body()
    job = services().queue.heartbeat(
        job_id, validation.lease_from(body), validation.progress_from(body)
    )
    return jsonify(heartbeat_json(job))


def _preview_image() -> bytes:
    """The checked `image` of a preview post: 413 past defaults.PREVIEW_MAX_BYTES, 400 unless a
    whole PNG, JPEG or WebP."""
    upload = request.files.get("image")
    if upload is None:
        raise InvalidInput("image (a PNG, JPEG or WebP file) is missing", code="missing_image")
    data = upload.read(defaults.PREVIEW_MAX_BYTES + 1)
    if len(data) > defaults.PREVIEW_MAX_BYTES:
        raise DalleqError(
            f"a preview is at most {defaults.PREVIEW_MAX_BYTES // 2**20} MB",
            code="too_large", status=413,
        )
    check_preview(data, "image")
    return data


@bp.post("/jobs/<job_id>/preview")
def preview(job_id):
    lease = validation.lease_from(request.form)
    steps = validation.preview_steps_from(request.form)
    job = services().queue.post_preview(job_id, lease, steps, _preview_image())
    return jsonify(heartbeat_json(job))


@bp.post("/jobs/<job_id>/fail")
def fail(job_id):
    body = json_body()
    job = services().queue.fail(
        job_id,
        validation.lease_from(body),
        validation.error_text(body),
        validation.retryable_flag(body),
    )
    return jsonify(job_json(job, request.script_root))


def _read_upload(name: str) -> bytes:
    upload = request.files.get(name)
    if upload is None:
        raise InvalidInput(f"{name} (a PNG file) is missing", code="missing_image")
    return upload.read()


def image_field(index: int) -> str:
    """The form field of tile `index` in a result post (shared/API.md)."""
    return f"image_{index}"


def _upload_for(job: dict) -> Upload:
    """The request's files and meta, checked against the job's grid (InvalidInput if not)."""
    tile_count = job["grid"] ** 2
    expected = {"lease", "meta", "grid"} | {image_field(i) for i in range(tile_count)}
    extra = sorted(set(request.files) - expected)
    if extra:
        raise InvalidInput(
            f"unexpected file {extra[0]}: a grid of {job['grid']} takes {image_field(0)}.."
            f"{image_field(tile_count - 1)}",
            code="unexpected_image",
        )
    meta = validation.result_meta_from(request.form.get("meta"), tile_count)
    grid_png = _read_upload("grid")
    tile_pngs = [_read_upload(image_field(i)) for i in range(tile_count)]
    side = defaults.TILE_PIXELS
    sizes = [check_png(grid_png, "grid", side * job["grid"])]
    sizes += [check_png(png, image_field(i), side) for i, png in enumerate(tile_pngs)]
    return Upload(grid_png, tile_pngs, sizes, meta)


@bp.post("/jobs/<job_id>/result")
def result(job_id):
    lease = validation.lease_from(request.form)
    finished = services().queue.post_result(job_id, lease, _upload_for, services().storage)
    return jsonify(job_json(finished, request.script_root))
