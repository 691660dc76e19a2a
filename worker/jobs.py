"""What a claimed job asks of the model, and what its images say about themselves.

The job object is shared/API.md's; the pipeline's request is minidalle's. Kept apart from the
loop so the translation is one place: the fingerprint names everything the images depend on, so
a spooled result is reused only for the very same work.
"""

from __future__ import annotations

import hashlib
import json

from minidalle.grid import image_text

# knobs of the job object → SamplingParams fields (same names, same meaning)
PARAM_NAMES = ("temperature", "top_k", "top_p", "condition_scale")


def sampling_knobs(job: dict) -> dict:
    params = job.get("params") or {}
    return {name: params[name] for name in PARAM_NAMES if params.get(name) is not None}


def tile_count(job: dict) -> int:
    return int(job["grid"]) ** 2


def fingerprint(job: dict) -> str:
    """A digest of everything a job's images depend on besides the weights."""
    work = {"prompt": job["prompt"], "seed": job["seed"], "grid": job["grid"],
            "model": job["model"], "params": sampling_knobs(job)}
    return hashlib.sha256(json.dumps(work, sort_keys=True).encode()).hexdigest()[:32]


def png_metadata(job: dict, model_label: str, dtype: str) -> dict:
    """PNG text chunks (minidalle.grid.image_text) of a job's images."""
    return image_text(job["prompt"], job["seed"], model_label, sampling_knobs(job), dtype,
                      job_id=job["id"])


def prompt_preview(prompt: str, char_count: int) -> str:
    flat = " ".join(prompt.split())
    return flat if len(flat) <= char_count else flat[: char_count - 1] + "…"
