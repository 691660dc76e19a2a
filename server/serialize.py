"""The job object of shared/API.md, built from a database row."""

import json

from . import ranking
from .clock import iso
from .models import JobStatus
from .previews import PREVIEW_NAME
from .storage import GRID_NAME, THUMB_NAME, tile_name


def file_url(root: str, job_id: str, name: str) -> str:
    return f"{root}/files/{job_id}/{name}"


def preview_url(root: str, job: dict) -> str | None:
    """The running job's newest preview; its steps in the query make each new preview a new URL,
    which is how a page polling the job knows to fetch it."""
    steps = job.get("preview_steps")
    if job["status"] != JobStatus.RUNNING.value or steps is None:
        return None
    return f"{file_url(root, job['id'], PREVIEW_NAME)}?steps={steps}"


def job_json(job: dict, root: str = "") -> dict:
    """The public view of a job row; `root` is the app's URL prefix (request.script_root)."""
    is_done = job["status"] == JobStatus.DONE.value and job["files_dir"]
    scores = ranking.scores_from_meta(result_meta(job), job["grid"] ** 2) if is_done else None
    preview = preview_url(root, job)
    return {
        "id": job["id"],
        "prompt": job["prompt"],
        "seed": job["seed"],
        "grid": job["grid"],
        "model": job["model"],
        "params": {
            "temperature": float(job["temperature"]),
            "top_k": job["top_k"],
            "top_p": None if job["top_p"] is None else float(job["top_p"]),
            "condition_scale": float(job["condition_scale"]),
        },
        "status": job["status"],
        "progress": float(job["progress"]),
        "position": job.get("position"),
        "attempts": job["attempts"],
        "error": job["error"],
        "parent_id": job["parent_id"],
        "created_at": iso(job["created_at"]),
        "started_at": iso(job["started_at"]),
        "finished_at": iso(job["finished_at"]),
        "grid_url": file_url(root, job["id"], GRID_NAME) if is_done else None,
        "image_urls": (
            [file_url(root, job["id"], tile_name(i)) for i in range(job["grid"] ** 2)]
            if is_done
            else []
        ),
        "thumb_url": file_url(root, job["id"], THUMB_NAME) if is_done else None,
        "scores": scores,
        "best_image": ranking.best_index(scores),
        "preview_url": preview,
        "preview_steps": job["preview_steps"] if preview else None,
        "starred": bool(job.get("starred")),
    }


def result_meta(job: dict) -> dict | None:
    """The worker's result metadata (timings, device, model), when it sent any and it reads as a
    JSON object.

    Rows stored before uploads' meta was checked (validation.result_meta_from) may hold anything:
    broken JSON reads as None, and lone surrogates (stored as `\\ud800` escapes, which no UTF-8
    page can carry) as "?", so such a row still renders.
    """
    if not job.get("result_meta"):
        return None
    try:
        meta = json.loads(job["result_meta"])
        encodable = json.dumps(meta, ensure_ascii=False).encode("utf-8", "replace").decode()
        meta = json.loads(encodable)
    except (ValueError, RecursionError):
        return None
    return meta if isinstance(meta, dict) else None
