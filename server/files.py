"""Serving a finished job's images: /files/<job id>/<name>, names from storage.file_names only."""

import re

from flask import Blueprint, current_app, request, send_file

from . import auth, services
from .errors import NotFound
from .models import JobStatus
from .storage import file_names

bp = Blueprint("files", __name__, url_prefix="/files")


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
    # Revalidated on every use (a cheap 304 while the job exists), so a deleted job's images are
    # gone from browsers too; kept out of shared caches when the server has a password.
    is_private = bool(current_app.config["DALLEQ"].password)
    response.cache_control.no_cache = True
    response.cache_control.private = is_private or None
    response.cache_control.public = not is_private or None
    return response
