"""The bodies of the OpenAPI document (server/openapi.py): the job object, requests and answers.

Ranges come from server/defaults.py, shapes from shared/API.md and docs/api.md. Request schemas
are the contract's ranges; answers list the fields of version 1 and allow more (version 1.1 adds
optional fields), except the error body, whose shape is fixed.
"""

from . import defaults

JSON = "application/json"
RESULT_TILE_FIELDS = defaults.GRID_MAX**2  # image_0 .. image_15 for the largest grid


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def schemas() -> dict:
    """The bodies: the job object, the people's and the workers' requests and answers."""
    timestamp = {"type": "string", "format": "date-time"}
    url = {"type": "string"}
    params = {
        "type": "object",
        "required": ["temperature", "top_k", "top_p", "condition_scale"],
        "properties": {
            "temperature": {"type": "number"},
            "top_k": {"type": "integer"},
            "top_p": nullable({"type": "number"}),
            "condition_scale": {"type": "number"},
        },
    }
    job_fields = {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
        "prompt": {"type": "string"},
        "seed": {"type": "integer", "minimum": 0, "maximum": defaults.SEED_MAX},
        "grid": {"type": "integer", "minimum": defaults.GRID_MIN, "maximum": defaults.GRID_MAX},
        "model": {"type": "string"},
        "params": params,
        "status": {"enum": ["queued", "running", "done", "failed", "canceled"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "position": nullable({"type": "integer", "minimum": 1}),
        "attempts": {"type": "integer", "minimum": 0},
        "error": nullable({"type": "string"}),
        "parent_id": nullable({"type": "string"}),
        "created_at": timestamp,
        "started_at": nullable(timestamp),
        "finished_at": nullable(timestamp),
        "grid_url": nullable(url),
        "image_urls": {"type": "array", "items": url},
        "thumb_url": nullable(url),
    }
    # version 1.1 (shared/API-1.1.md): optional, a version 1 server leaves them out
    job_fields_1_1 = {
        "scores": nullable({"type": "array", "items": {"type": "number"}}),
        "best_image": nullable({"type": "integer", "minimum": 0}),
        "preview_url": nullable(url),
        "preview_steps": nullable(
            {"type": "integer", "minimum": 0, "maximum": defaults.PREVIEW_STEPS_MAX}
        ),
        "starred": {"type": "boolean"},
    }
    sampling = {
        "seed": {"type": "integer", "minimum": 0, "maximum": defaults.SEED_MAX},
        "grid": job_fields["grid"],
        "model": {"type": "string", "pattern": f"^{defaults.MODEL_NAME_PATTERN}$"},
        "temperature": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": defaults.TEMPERATURE_MAX,
        },
        "top_k": {"type": "integer", "minimum": 1, "maximum": defaults.TOP_K_MAX},
        "top_p": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
        "condition_scale": {
            "type": "number",
            "minimum": defaults.CONDITION_SCALE_MIN,
            "maximum": defaults.CONDITION_SCALE_MAX,
        },
    }
    prompt = {"type": "string", "minLength": 1, "maxLength": defaults.PROMPT_MAX_CHARS}
    lease = {"type": "string", "minLength": 1, "maxLength": 200}
    lease_answer = {
        "type": "object",
        "required": ["lease_expires_at", "cancel_requested"],
        "properties": {"lease_expires_at": timestamp, "cancel_requested": {"type": "boolean"}},
    }
    push_endpoint = {
        "type": "string",
        "maxLength": defaults.PUSH_ENDPOINT_MAX_CHARS,
        "description": "the push service URL: https (http only to localhost, for tests)",
    }
    worker_name = {"type": "string", "minLength": 1, "maxLength": defaults.WORKER_NAME_MAX_CHARS}
    models = {"type": "array", "minItems": 1, "items": sampling["model"]}
    worker_state = {"enum": ["working", "idle", "paused"]}
    reason = {"type": "string", "minLength": 1, "maxLength": defaults.WORKER_REASON_MAX_CHARS}
    tiles = {
        f"image_{i}": {"type": "string", "contentMediaType": "image/png"}
        for i in range(RESULT_TILE_FIELDS)
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string", "pattern": "^[a-z_]+$"},
                        "message": {"type": "string", "minLength": 1},
                    },
                }
            },
        },
        "Job": {
            "type": "object",
            "required": list(job_fields),
            "properties": {**job_fields, **job_fields_1_1},
        },
        "JobPage": {
            "type": "object",
            "required": ["jobs", "next_cursor"],
            "properties": {
                "jobs": {"type": "array", "items": ref("Job")},
                "next_cursor": nullable({"type": "string"}),
            },
        },
        "NewJob": {
            "type": "object",
            "required": ["prompt"],
            "properties": {"prompt": prompt, **sampling},
        },
        "Rerun": {
            "type": "object",
            "properties": {
                **sampling,
                "prompt": prompt,
                "seed": {"anyOf": [{"enum": ["new", "same"]}, sampling["seed"]]},
            },
        },
        "PushKey": {
            "type": "object",
            "required": ["public_key"],
            "properties": {"public_key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{87}$"}},
        },
        "PushSubscription": {
            "type": "object",
            "required": ["endpoint", "keys"],
            "properties": {
                "endpoint": push_endpoint,
                "keys": {
                    "type": "object",
                    "required": ["p256dh", "auth"],
                    "properties": {
                        "p256dh": {"type": "string", "description": "base64url, 65 bytes: an"
                                   " uncompressed P-256 point"},
                        "auth": {"type": "string", "description": "base64url, 16 bytes"},
                    },
                },
            },
        },
        "PushEndpoint": {
            "type": "object",
            "required": ["endpoint"],
            "properties": {"endpoint": push_endpoint},
        },
        "PushSubscribed": {
            "type": "object",
            "required": ["endpoint"],
            "properties": {"endpoint": push_endpoint},
        },
        "Star": {
            "type": "object",
            "required": ["starred"],
            "properties": {"starred": {"type": "boolean"}},
        },
        "Claim": {
            "type": "object",
            "required": ["worker", "models"],
            "properties": {
                "worker": worker_name,
                "models": models,
                "max_jobs": {"type": "integer", "minimum": 1, "maximum": defaults.CLAIM_MAX_JOBS},
                "wait": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": defaults.CLAIM_MAX_WAIT_SECONDS,
                },
            },
        },
        "Claimed": {
            "type": "object",
            "required": ["jobs"],
            "properties": {
                "jobs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["job", "lease", "lease_expires_at"],
                        "properties": {
                            "job": ref("Job"),
                            "lease": lease,
                            "lease_expires_at": timestamp,
                        },
                    },
                }
            },
        },
        "WorkerStatus": {
            "type": "object",
            "required": ["worker", "state"],
            "properties": {
                "worker": worker_name,
                "state": worker_state,
                "reason": nullable(reason),
                "models": models,
            },
            "description": "reason is required (non-empty) when state is paused",
            "if": {"required": ["state"], "properties": {"state": {"const": "paused"}}},
            "then": {"required": ["reason"], "properties": {"reason": reason}},
        },
        "WorkerStateReport": {
            "type": "object",
            "required": ["worker", "state", "reason", "models", "reported_at"],
            "properties": {
                "worker": worker_name,
                "state": worker_state,
                "reason": nullable({"type": "string"}),
                "models": nullable({"type": "array", "items": {"type": "string"}}),
                "reported_at": timestamp,
            },
        },
        "Workers": {
            "type": "object",
            "required": ["workers", "seen_minutes"],
            "properties": {
                "workers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["worker", "status", "reason", "models", "reported_at",
                                     "last_claim_at", "last_seen_at", "running_jobs"],
                        "properties": {
                            "worker": {"type": "string"},
                            "status": {"enum": ["working", "idle", "paused", "asked", "gone"]},
                            "reason": nullable({"type": "string"}),
                            "models": nullable({"type": "array", "items": {"type": "string"}}),
                            "reported_at": nullable(timestamp),
                            "last_claim_at": nullable(timestamp),
                            "last_seen_at": nullable(timestamp),
                            "running_jobs": {"type": "integer", "minimum": 0},
                        },
                    },
                },
                "seen_minutes": {"type": "integer", "minimum": 1},
            },
        },
        "Heartbeat": {
            "type": "object",
            "required": ["lease", "progress"],
            "properties": {
                "lease": lease,
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "LeaseAnswer": lease_answer,
        "Preview": {
            "type": "object",
            "required": ["lease", "steps", "image"],
            "properties": {
                "lease": lease,
                "steps": {"type": "integer", "minimum": 0, "maximum": defaults.PREVIEW_STEPS_MAX},
                "image": {"type": "string", "description": "PNG, JPEG or WebP, at most 1 MB"},
            },
        },
        "Result": {
            "type": "object",
            "required": ["lease", "grid", "image_0"],
            "properties": {
                "lease": lease,
                "grid": {"type": "string", "contentMediaType": "image/png"},
                **tiles,
                "meta": {
                    "type": "string",
                    "maxLength": defaults.META_MAX_BYTES,
                    "contentMediaType": JSON,
                },
            },
        },
        "Fail": {
            "type": "object",
            "required": ["lease", "error"],
            "properties": {
                "lease": lease,
                "error": {"type": "string", "minLength": 1},
                "retryable": {"type": "boolean"},
            },
        },
    }
