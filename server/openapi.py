"""The API as an OpenAPI 3.1 document, served at GET /api/v1/openapi.json (shared/API-1.1.md).

Built from server/defaults.py, so a range changed there changes here too; tests/test_openapi.py
holds its paths against the route table, and tests/test_fuzz.py runs Schemathesis against a live
server with it. It describes what this server answers (shared/API.md, docs/api.md), plus the
answers of issue 16's hardening that every operation may give: `Idempotency-Key` on submit and
rerun, 400 `bad_host`, 429 with `Retry-After`.
"""

from flask import Blueprint, jsonify, request

from . import defaults
from .openapi_schemas import JSON, ref, schemas

bp = Blueprint("api_doc", __name__, url_prefix="/api/v1")

API_VERSION = "1.1"
IDEMPOTENCY_KEY_MAX_CHARS = 200


def json_content(schema: dict) -> dict:
    return {"content": {JSON: {"schema": schema}}}


def answer(description: str, schema: dict | None = None, **extra) -> dict:
    """One response: JSON of `schema`, or no body when `schema` is None (204)."""
    return {"description": description, **(json_content(schema) if schema else {}), **extra}


def error(description: str) -> dict:
    return answer(description, ref("Error"))


TOO_MANY = answer(
    "too_many_requests: throttled; try again after Retry-After seconds",
    ref("Error"),
    headers={"Retry-After": {"schema": {"type": "integer", "minimum": 0}}},
)
# Answers any operation may give: a Host that is not this server's, and throttling.
COMMON = {
    "400": error("bad_host, invalid_json, invalid_body, or a field's invalid_<field>"),
    "429": TOO_MANY,
}
PEOPLE = {**COMMON, "401": error("unauthorized: the server has a password; log in first")}
PEOPLE_WRITE = {**PEOPLE, "403": error("csrf: a cross-site request, or a missing X-CSRF-Token")}
WORKER = {**COMMON, "401": error("bad_worker_token or no_worker_token")}
WITH_BODY = {"413": error("too_large: over DALLEQ_MAX_UPLOAD_MB")}
NOT_FOUND = {"404": error("not_found: no such job")}
STALE = {"409": error("stale_lease: the lease is not the job's current lease")}
PEOPLE_SECURITY = [{}, {"session": []}]  # open without a password, else the login session
PEOPLE_WRITE_SECURITY = [{}, {"session": [], "csrfToken": []}]
WORKER_SECURITY = [{"workerToken": []}]

JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "the same key with the same body within 24 h returns the same job",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_CHARS},
}
IDEMPOTENT = {
    "200": answer("the job this key queued before (a replay)", ref("Job")),
    "422": error("idempotency_key_reused: the key came before with another body"),
}


def operation(
    summary: str,
    responses: dict,
    security: list,
    *,
    body: str | None = None,
    media_type: str = JSON,
    parameters=(),
) -> dict:
    """One method of a path; `body` names the request body's schema (optional when None)."""
    result = {"summary": summary, "security": security, "responses": responses}
    if parameters:
        result["parameters"] = list(parameters)
    if body:
        result["requestBody"] = {
            "required": media_type != JSON,  # JSON bodies may be empty: they count as {}
            "content": {media_type: {"schema": ref(body)}},
        }
    return result


def paths() -> dict:
    job = ref("Job")
    list_parameters = [
        {
            "name": "status",
            "in": "query",
            "schema": {"type": "string"},
            "description": "a comma-separated list of statuses",
        },
        {"name": "q", "in": "query", "schema": {"type": "string"}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": defaults.LIST_LIMIT_MAX},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        {
            "name": "starred",
            "in": "query",
            "schema": {"enum": ["true", "false"]},
            "description": "true: only starred jobs; false: only the others",
        },
    ]
    return {
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": answer(
                        "the API as an OpenAPI 3.1 document",
                        {"type": "object", "required": ["openapi", "paths"]},
                    ),
                    **COMMON,
                },
            },
        },
        "/api/v1/jobs": {
            "post": operation(
                "Queue a job",
                {"201": answer("the job, queued", job), **IDEMPOTENT, **PEOPLE_WRITE, **WITH_BODY},
                PEOPLE_WRITE_SECURITY,
                body="NewJob",
                parameters=[IDEMPOTENCY_KEY],
            ),
            "get": operation(
                "Jobs newest first, a page at a time",
                {"200": answer("a page of jobs", ref("JobPage")), **PEOPLE},
                PEOPLE_SECURITY,
                parameters=list_parameters,
            ),
        },
        "/api/v1/jobs/{job_id}": {
            "parameters": [JOB_ID],
            "get": operation(
                "One job", {"200": answer("the job", job), **PEOPLE, **NOT_FOUND}, PEOPLE_SECURITY
            ),
            "delete": operation(
                "Delete a job and its files",
                {"204": answer("deleted"), **PEOPLE_WRITE, **NOT_FOUND},
                PEOPLE_WRITE_SECURITY,
            ),
        },
        "/api/v1/jobs/{job_id}/rerun": {
            "parameters": [JOB_ID],
            "post": operation(
                "Queue a new job made like this one",
                {
                    "201": answer("the new job, parent_id set", job),
                    **IDEMPOTENT,
                    **PEOPLE_WRITE,
                    **WITH_BODY,
                    **NOT_FOUND,
                },
                PEOPLE_WRITE_SECURITY,
                body="Rerun",
                parameters=[IDEMPOTENCY_KEY],
            ),
        },
        "/api/v1/jobs/{job_id}/cancel": {
            "parameters": [JOB_ID],
            "post": operation(
                "Cancel a job",
                {
                    "200": answer("the job", job),
                    **PEOPLE_WRITE,
                    **NOT_FOUND,
                    "409": error("already_finished: done, failed or canceled"),
                },
                PEOPLE_WRITE_SECURITY,
            ),
        },
        "/api/v1/push/key": {
            "get": operation(
                "The server's VAPID public key, for pushManager.subscribe",
                {"200": answer("the key", ref("PushKey")), **PEOPLE},
                PEOPLE_SECURITY,
            ),
        },
        "/api/v1/push/subscriptions": {
            "post": operation(
                "Notify this browser when a job ends (Web Push)",
                {
                    "201": answer("stored", ref("PushSubscribed")),
                    "200": answer("already stored (its keys renewed)", ref("PushSubscribed")),
                    **PEOPLE_WRITE,
                    **WITH_BODY,
                    "409": error("too_many_subscriptions: "
                                 f"{defaults.PUSH_SUBSCRIPTIONS_MAX} browsers already"),
                },
                PEOPLE_WRITE_SECURITY,
                body="PushSubscription",
            ),
            "delete": operation(
                "Stop notifying this browser",
                {"204": answer("forgotten (or never stored)"), **PEOPLE_WRITE, **WITH_BODY},
                PEOPLE_WRITE_SECURITY,
                body="PushEndpoint",
            ),
        },
        "/api/v1/jobs/{job_id}/star": {
            "parameters": [JOB_ID],
            "post": operation(
                "Star or unstar a job",
                {"200": answer("the job", job), **PEOPLE_WRITE, **WITH_BODY, **NOT_FOUND},
                PEOPLE_WRITE_SECURITY,
                body="Star",
            ),
        },
        "/api/v1/worker/claim": {
            "post": operation(
                "Lease the oldest queued jobs",
                {
                    "200": answer("the leased jobs", ref("Claimed")),
                    "204": answer(
                        "nothing queued for these models within wait, or too many long polls open"
                    ),
                    **WORKER,
                    **WITH_BODY,
                },
                WORKER_SECURITY,
                body="Claim",
            ),
        },
        "/api/v1/worker/status": {
            "post": operation(
                "Say what this worker is doing: working, idle, or paused and why",
                {"200": answer("the state as stored", ref("WorkerStateReport")), **WORKER,
                 **WITH_BODY},
                WORKER_SECURITY,
                body="WorkerStatus",
            ),
        },
        "/api/v1/workers": {
            "get": operation(
                "Each worker's state, as the queue page shows it",
                {"200": answer("the workers heard from lately", ref("Workers")), **PEOPLE},
                PEOPLE_SECURITY,
            ),
        },
        "/api/v1/worker/jobs/{job_id}/heartbeat": {
            "parameters": [JOB_ID],
            "post": operation(
                "Report progress and extend the lease",
                {
                    "200": answer("the lease", ref("LeaseAnswer")),
                    **WORKER,
                    **WITH_BODY,
                    **NOT_FOUND,
                    **STALE,
                },
                WORKER_SECURITY,
                body="Heartbeat",
            ),
        },
        "/api/v1/worker/jobs/{job_id}/preview": {
            "parameters": [JOB_ID],
            "post": operation(
                "Show the grid forming; counts as a heartbeat",
                {
                    "200": answer("the lease, as a heartbeat answers", ref("LeaseAnswer")),
                    **WORKER,
                    "413": error("too_large: a preview over 1 MB, or over DALLEQ_MAX_UPLOAD_MB"),
                    **NOT_FOUND,
                    **STALE,
                },
                WORKER_SECURITY,
                body="Preview",
                media_type="multipart/form-data",
            ),
        },
        "/api/v1/worker/jobs/{job_id}/result": {
            "parameters": [JOB_ID],
            "post": operation(
                "Hand in a finished job",
                {"200": answer("the job, done", job), **WORKER, **WITH_BODY, **NOT_FOUND, **STALE},
                WORKER_SECURITY,
                body="Result",
                media_type="multipart/form-data",
            ),
        },
        "/api/v1/worker/jobs/{job_id}/fail": {
            "parameters": [JOB_ID],
            "post": operation(
                "End this attempt without a result",
                {"200": answer("the job", job), **WORKER, **WITH_BODY, **NOT_FOUND, **STALE},
                WORKER_SECURITY,
                body="Fail",
            ),
        },
    }


def document(root: str = "") -> dict:
    """The whole document; `root` is the app's URL prefix, the document's one server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dalle-queue",
            "version": API_VERSION,
            "description": "A self-hosted prompt queue for a home GPU: the people's API and the"
            ' workers\' API. Every error is {"error": {"code", "message"}}.',
        },
        "servers": [{"url": root or "/"}],
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "workerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "DALLEQ_WORKER_TOKEN",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "the /login page's session, when DALLEQ_PASSWORD is set",
                },
                "csrfToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "the session's CSRF token, on writes that carry"
                    " the session cookie",
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document(request.script_root))
