"""Checking what people and workers send, field by field, with the ranges of shared/API.md.

The same checks serve the JSON API and the HTML forms, so numbers may arrive as JSON numbers or as
form strings; anything else gets an InvalidInput naming the field.
"""

import json
import math
import re
import secrets

from . import defaults, ranking
from .errors import InvalidInput

_MODEL_NAME = re.compile(defaults.MODEL_NAME_PATTERN)
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # below 32, except \t \n \r
PARAM_NAMES = ("temperature", "top_k", "top_p", "condition_scale")


def _is_encodable(text: str) -> bool:
    """False for strings JSON can carry but UTF-8 cannot store (lone surrogates like \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_clean_text(text: str) -> bool:
    """True for text a page and the database can hold: encodable, no control characters."""
    return _is_encodable(text) and not _CONTROL_CHARACTER.search(text)


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def as_int(body: dict, name: str, low: int, high: int, default=None):
    value = body.get(name)
    if _blank(value):
        return default
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a whole number", code=f"invalid_{name}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,12}\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise InvalidInput(f"{name} must be a whole number", code=f"invalid_{name}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}", code=f"invalid_{name}")
    return value


def as_float(body: dict, name: str, default=None) -> float | None:
    value = body.get(name)
    if _blank(value):
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(f"{name} must be a number", code=f"invalid_{name}")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer of hundreds of digits
        raise InvalidInput(f"{name} must be a number", code=f"invalid_{name}") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite number", code=f"invalid_{name}")
    return number


def prompt_from(body: dict) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not _is_encodable(prompt):
        raise InvalidInput("prompt is required and must be text", code="invalid_prompt")
    prompt = prompt.strip()
    if not prompt:
        raise InvalidInput("prompt must not be empty", code="invalid_prompt")
    if len(prompt) > defaults.PROMPT_MAX_CHARS:
        raise InvalidInput(
            f"prompt must be at most {defaults.PROMPT_MAX_CHARS} characters (it has {len(prompt)})",
            code="invalid_prompt",
        )
    if _CONTROL_CHARACTER.search(prompt):
        raise InvalidInput("prompt must not contain control characters", code="invalid_prompt")
    return prompt


def model_from(body: dict, default: str) -> str:
    model = body.get("model")
    if _blank(model):
        return default
    if not isinstance(model, str) or not _MODEL_NAME.fullmatch(model.strip()):
        raise InvalidInput(
            "model must be a name of 1-64 letters, digits, '.', '_' or '-'", code="invalid_model"
        )
    return model.strip()


def random_seed() -> int:
    return secrets.randbelow(defaults.SEED_MAX + 1)


def params_from(body: dict, base: dict) -> dict:
    """The sampling params, each from `body` when given, else from `base` (defaults or a parent)."""
    temperature = as_float(body, "temperature", base["temperature"])
    if not 0 < temperature <= defaults.TEMPERATURE_MAX:
        raise InvalidInput(
            f"temperature must be > 0 and <= {defaults.TEMPERATURE_MAX}", code="invalid_temperature"
        )
    top_k = as_int(body, "top_k", 1, defaults.TOP_K_MAX, base["top_k"])
    top_p = as_float(body, "top_p", base["top_p"])
    if top_p is not None and not 0 < top_p <= 1:
        raise InvalidInput("top_p must be > 0 and <= 1", code="invalid_top_p")
    scale = as_float(body, "condition_scale", base["condition_scale"])
    if not defaults.CONDITION_SCALE_MIN <= scale <= defaults.CONDITION_SCALE_MAX:
        raise InvalidInput(
            f"condition_scale must be between {defaults.CONDITION_SCALE_MIN:g} and "
            f"{defaults.CONDITION_SCALE_MAX:g}",
            code="invalid_condition_scale",
        )
    return {"temperature": temperature, "top_k": top_k, "top_p": top_p, "condition_scale": scale}


DEFAULT_PARAMS = {
    "temperature": defaults.TEMPERATURE_DEFAULT,
    "top_k": defaults.TOP_K_DEFAULT,
    "top_p": defaults.TOP_P_DEFAULT,
    "condition_scale": defaults.CONDITION_SCALE_DEFAULT,
}


def require_object(body) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", code="invalid_body")
    return body


def new_job_fields(body: dict, default_model: str) -> dict:
    """Validated columns for POST /api/v1/jobs."""
    body = require_object(body)
    seed = as_int(body, "seed", 0, defaults.SEED_MAX)
    return {
        "prompt": prompt_from(body),
        "seed": random_seed() if seed is None else seed,
        "grid": as_int(body, "grid", defaults.GRID_MIN, defaults.GRID_MAX, defaults.GRID_DEFAULT),
        "model": model_from(body, default_model),
        **params_from(body, DEFAULT_PARAMS),
    }


def rerun_fields(body: dict, parent: dict) -> dict:
    """Validated columns for POST /api/v1/jobs/<id>/rerun: the parent's, changed where asked."""
    body = require_object(body)
    seed_choice = body.get("seed", "new")
    if _blank(seed_choice) or seed_choice == "new":
        seed = random_seed()
    elif seed_choice == "same":
        seed = parent["seed"]
    else:
        seed = as_int(body, "seed", 0, defaults.SEED_MAX)
    return {
        "prompt": prompt_from(body) if not _blank(body.get("prompt")) else parent["prompt"],
        "seed": seed,
        "grid": as_int(body, "grid", defaults.GRID_MIN, defaults.GRID_MAX, parent["grid"]),
        "model": model_from(body, parent["model"]),
        **params_from(body, parent),
    }


def worker_name(body: dict) -> str:
    name = body.get("worker")
    if not isinstance(name, str) or not name.strip() or not _is_encodable(name):
        raise InvalidInput("worker (a name) is required", code="invalid_worker")
    if len(name) > defaults.WORKER_NAME_MAX_CHARS:
        raise InvalidInput(
            f"worker must be at most {defaults.WORKER_NAME_MAX_CHARS} characters",
            code="invalid_worker",
        )
    return name.strip()


def model_list(body: dict) -> list[str]:
    models = body.get("models")
    if (
        not isinstance(models, list)
        or not models
        or not all(isinstance(m, str) and _MODEL_NAME.fullmatch(m) for m in models)
    ):
        raise InvalidInput(
            "models must be a non-empty list of model names", code="invalid_models"
        )
    return models[: defaults.CLAIM_MAX_JOBS]


WORKER_STATES = ("working", "idle", "paused")


def worker_state(body: dict) -> str:
    """A worker status report's `state` (POST /api/v1/worker/status, issue 19)."""
    state = body.get("state")
    if state not in WORKER_STATES:
        raise InvalidInput(
            f"state must be one of {', '.join(WORKER_STATES)}", code="invalid_state"
        )
    return state


def state_reason(body: dict, state: str) -> str | None:
    """Why the worker is in `state`: required when paused (the page shows it), else optional."""
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or not _is_clean_text(reason)):
        raise InvalidInput("reason must be text without control characters", code="invalid_reason")
    reason = (reason or "").strip() or None
    if reason is None and state == "paused":
        raise InvalidInput("reason is required when the state is paused", code="invalid_reason")
    if reason and len(reason) > defaults.WORKER_REASON_MAX_CHARS:
        raise InvalidInput(
            f"reason must be at most {defaults.WORKER_REASON_MAX_CHARS} characters",
            code="invalid_reason",
        )
    return reason


def optional_model_list(body: dict) -> list[str] | None:
    """`models` as a claim takes it, or None when the body leaves it out."""
    return None if body.get("models") is None else model_list(body)


def lease_from(body) -> str:
    lease = body.get("lease")
    if not isinstance(lease, str) or not lease or len(lease) > 200 or not _is_encodable(lease):
        raise InvalidInput("lease is required", code="invalid_lease")
    return lease


def progress_from(body: dict) -> float:
    progress = as_float(body, "progress", None)
    if progress is None or not 0 <= progress <= 1:
        raise InvalidInput("progress must be a number from 0 to 1", code="invalid_progress")
    return progress


def preview_steps_from(form) -> int:
    steps = as_int(form, "steps", 0, defaults.PREVIEW_STEPS_MAX)
    if steps is None:
        raise InvalidInput("steps (a whole number) is required", code="invalid_steps")
    return steps


def error_text(body: dict) -> str:
    error = body.get("error")
    if not isinstance(error, str) or not error.strip() or not _is_encodable(error):
        raise InvalidInput("error (text) is required", code="invalid_error")
    return error.strip()[: defaults.ERROR_MAX_CHARS]


def retryable_flag(body: dict) -> bool:
    retryable = body.get("retryable", False)
    if not isinstance(retryable, bool):
        raise InvalidInput("retryable must be true or false", code="invalid_retryable")
    return retryable


def starred_flag(body: dict) -> bool:
    """The star's new state from POST /api/v1/jobs/<id>/star: a JSON true or false, required."""
    starred = body.get("starred")
    if not isinstance(starred, bool):
        raise InvalidInput("starred (true or false) is required", code="invalid_starred")
    return starred


STARRED_FILTER = {"true": True, "false": False}


def starred_filter(value: str | None) -> bool | None:
    """GET /api/v1/jobs's `starred`: true (only starred), false (only unstarred), or absent."""
    if value is None:
        return None
    if value not in STARRED_FILTER:
        raise InvalidInput(
            f"starred must be true or false, not {value[:40]!r}", code="invalid_starred"
        )
    return STARRED_FILTER[value]


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's json takes them, JSON does not


def result_meta_from(raw: str | None, image_count: int) -> dict | None:
    """A result's optional `meta` (a JSON object) parsed and checked; None when absent.

    Its strings, keys included, are checked like prompts: a lone surrogate or a control character
    stored here would break the job page for everyone. Nesting is bounded, both for the parser
    (Python's json recurses) and for the walk below.
    """
    if raw is None or raw == "":
        return None
    if len(raw) > defaults.META_MAX_BYTES:
        raise InvalidInput(
            f"meta must be at most {defaults.META_MAX_BYTES} bytes", code="invalid_meta"
        )
    try:
        meta = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        raise InvalidInput("meta is not valid JSON", code="invalid_meta") from None
    if not isinstance(meta, dict):
        raise InvalidInput("meta must be a JSON object", code="invalid_meta")
    pending = [(meta, 1)]  # (value, depth), walked without recursion
    while pending:
        value, depth = pending.pop()
        if depth > defaults.META_MAX_DEPTH:
            raise InvalidInput(
                f"meta must nest at most {defaults.META_MAX_DEPTH} levels", code="invalid_meta"
            )
        if isinstance(value, dict):
            if not all(_is_clean_text(key) for key in value):
                raise InvalidInput("meta keys must be text", code="invalid_meta")
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and not _is_clean_text(value):
            raise InvalidInput(
                "meta text must be UTF-8 without control characters", code="invalid_meta"
            )
    if "scores" in meta:
        check_scores(meta["scores"], image_count)
    return meta


def check_scores(scores, image_count: int) -> None:
    """meta.scores (shared/API-1.1.md): one finite number per image, in image_urls' order."""
    if not isinstance(scores, list) or not all(ranking.is_score(score) for score in scores):
        raise InvalidInput("meta.scores must be a list of finite numbers", code="invalid_meta")
    if len(scores) != image_count:
        raise InvalidInput(
            f"meta.scores must have one score per image: {image_count}, not {len(scores)}",
            code="invalid_meta",
        )
