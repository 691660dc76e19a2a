"""The people's API, /api/v1/jobs (shared/API.md, "For people"). The phone page uses it too."""

import json

from flask import Blueprint, current_app, jsonify, request

from . import auth, defaults, idempotency, services, validation
from .errors import InvalidInput
from .models import JobStatus
from .serialize import job_json

bp = Blueprint("api_jobs", __name__, url_prefix="/api/v1/jobs")


@bp.before_request
def guard():
    auth.require_login()
    auth.check_api_csrf()


def json_body() -> dict:
    """The request's JSON object; {} for an empty body; InvalidInput for anything else."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("the request body is not valid JSON", code="invalid_json") from None
    return validation.require_object(body)


def render(job: dict, status: int = 200):
    return jsonify(job_json(job, request.script_root)), status


def queue_once(fields: dict, key, parent_id: str | None = None):
    """Queue the job, or answer with the one this Idempotency-Key already made (200, not 201)."""
    job, is_created = services().queue.submit_once(fields, key, parent_id=parent_id)
    return render(job, 201 if is_created else 200)


@bp.post("")
def submit():
    body = json_body()
    key = idempotency.submission_key(
        request.headers.get(idempotency.HEADER), idempotency.SUBMIT_SCOPE, body
    )
    fields = validation.new_job_fields(body, current_app.config["DALLEQ"].default_model)
    return queue_once(fields, key)


@bp.get("/<job_id>")
def get(job_id):
    services().queue.expire_if_due()
    return render(services().catalog.get(job_id))


@bp.get("")
def listing():
    args = request.args
    statuses = [s.strip() for s in args.get("status", "").split(",") if s.strip()]
    known = {status.value for status in JobStatus}
    unknown = [s for s in statuses if s not in known]
    if unknown:
        raise InvalidInput(
            f"unknown status {unknown[0]!r}; use {', '.join(sorted(known))}", code="invalid_status"
        )
    limit = validation.as_int(
        dict(args), "limit", 1, defaults.LIST_LIMIT_MAX, defaults.LIST_LIMIT_DEFAULT
    )
    starred = validation.starred_filter(args.get("starred"))
    services().queue.expire_if_due()
    rows, next_cursor = services().catalog.page(
        statuses=statuses,
        query=args.get("q", ""),
        limit=limit,
        cursor=args.get("cursor") or None,
        starred=starred,
    )
    root = request.script_root
    return jsonify({"jobs": [job_json(row, root) for row in rows], "next_cursor": next_cursor})


@bp.post("/<job_id>/rerun")
def rerun(job_id):
    body = json_body()
    key = idempotency.submission_key(
        request.headers.get(idempotency.HEADER), idempotency.rerun_scope(job_id), body
    )
    parent = services().catalog.get(job_id)
    fields = validation.rerun_fields(body, parent)
    return queue_once(fields, key, parent_id=parent["id"])


@bp.post("/<job_id>/cancel")
def cancel(job_id):
    return render(services().queue.cancel(job_id))


@bp.post("/<job_id>/star")
def star(job_id):
    is_starred = validation.starred_flag(json_body())
    return render(services().queue.set_starred(job_id, is_starred))


@bp.delete("/<job_id>")
def delete(job_id):
    files_dir = services().queue.delete(job_id)
    services().storage.remove(files_dir)
    return "", 204
