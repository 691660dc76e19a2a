"""Serving a job's images: a finished job's at /files/<job id>/<name>, names from
storage.file_names only, and a running job's live preview at /files/<job id>/preview."""

import re

from flask import Blueprint, current_app, request, send_file

from . import auth, services
from .errors import NotFound
from .models import JobStatus
from .previews import PREVIEW_NAME, media_type
from .storage import file_names

bp = Blueprint("files", __name__, url_prefix="/files")


@bp.app_template_global()
def download_name(job: dict, name: str) -> str:
    """`a-red-fox-seed-7-tile_2.png`: readable in a phone's downloads folder."""
    slug = re.sub(r"[^a-z0-9]+", "-", job["prompt"].lower()).strip("-")[:60] or "image"
    return f"{slug}-seed-{job['seed']}-{name}"


@bp.get("/<job_id>/<name>")
def job_file(job_id, name):
    auth.require_login()
    job = services().catalog.get(job_id)
    if job["status"] != JobStatus.DONE.value or name not in file_names(job["grid"]):
        raise NotFound(f"job {job_id} has no file {name}")
    path = services().storage.path(job["files_dir"], name)
    if not path.is_file():
        raise NotFound(f"the file {name} of job {job_id} is missing from the data dir")
    response = send_file(
        path,
        as_attachment=request.args.get("download") == "1",
        download_name=download_name(job, name),
    )
    return revalidated(response)


@bp.get(f"/<job_id>/{PREVIEW_NAME}")
def job_preview(job_id):
    """The running job's newest preview; 404 once it ended (its file is dropped then)."""
    auth.require_login()
    job = services().catalog.get(job_id)
    if job["status"] != JobStatus.RUNNING.value or job["preview_steps"] is None:
        raise NotFound(f"job {job_id} has no preview")
    try:
        # Opened once: a newer preview renamed into place meanwhile leaves this one whole. The
        # response closes it.
        handle = open(services().queue.previews.path(job_id), "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise NotFound(f"job {job_id}'s preview is gone (the job ended)") from None
    mimetype = media_type(handle.read(12))
    handle.seek(0)
    return revalidated(send_file(handle, mimetype=mimetype))


def revalidated(response):
    """Revalidated on every use (a cheap 304 while the job exists), so a deleted job's images are
    gone from browsers too; kept out of shared caches when the server has a password."""
    is_private = bool(current_app.config["DALLEQ"].password)
    response.cache_control.no_cache = True
    response.cache_control.private = is_private or None
    response.cache_control.public = not is_private or None
    return response
