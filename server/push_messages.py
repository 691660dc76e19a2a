"""What a push says when a job ends: the JSON the service worker's `push` handler shows.

Done: the prompt, the seed and grid, the thumbnail; failed: the reason. A canceled job says
nothing (the person canceled it). URLs are relative to the app's root ("jobs/<id>") unless the
server knows its public URL: the service worker resolves them against its own scope, which is the
app's root however it is proxied.
"""

from .models import JobStatus
from .storage import THUMB_NAME

TITLE_PROMPT_CHARS = 60
BODY_MAX_CHARS = 300  # push services carry about 4 KB; a failure's reason may be 2,000 characters


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def job_message(job: dict, base_url: str = "") -> dict | None:
    """The notification for a job row that just ended; None when it needs none (not done/failed).

    base_url is the public URL without its trailing slash, or "" for root-relative URLs.
    """
    prefix = f"{base_url}/" if base_url else ""
    job_id = job["id"]
    prompt = shorten(job["prompt"], TITLE_PROMPT_CHARS)
    message = {"job_id": job_id, "status": job["status"], "url": f"{prefix}jobs/{job_id}",
               "tag": job_id}
    if job["status"] == JobStatus.DONE.value:
        grid = job["grid"]
        thumb_url = f"{prefix}files/{job_id}/{THUMB_NAME}"
        body = f"seed {job['seed']} · {grid}×{grid} grid"
        return dict(message, title=f"Done: {prompt}", body=body, icon=thumb_url, image=thumb_url)
    if job["status"] == JobStatus.FAILED.value:
        reason = shorten(job["error"] or "no reason given", BODY_MAX_CHARS)
        return dict(message, title=f"Failed: {prompt}", body=reason, icon="static/icon-192.png")
    return None
