"""The phone-first pages: submit and live queue, gallery, job page, login, PWA manifest.

Every page works without JavaScript: each button is a real <form method=post> carrying the
session's CSRF token (server/auth.py), answered with a 303 redirect (post/redirect/get) so a
phone's back button or reload never submits twice. static/*.js then adds live status by polling
the same JSON API the workers' results land in (shared/API.md, "For people"). A view validates,
calls one queue or catalog verb, then renders (STYLE 23); a form that fails validation is shown
again with its message and with everything the person typed, never emptied.
"""

import json
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from . import (
    auth,
    defaults,
    idempotency,
    ranking,
    services,
    sharing,
    sightings,
    validation,
    worker_states,
)
from .clock import utcnow
from .errors import InvalidInput, KeyReused
from .models import FINISHED_STATUSES, JobStatus
from .serialize import job_json, result_meta

bp = Blueprint("pages", __name__)

GALLERY_PAGE_SIZE = 24
RECENT_COUNT = 6  # finished jobs shown under the live queue
FLASH_PROMPT_CHARS = 60  # flashes live in the session cookie (4 KB): keep them short
ACTIVE_STATUSES = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
FINISHED = [status.value for status in FINISHED_STATUSES]
THEME_COLOR = "#6d5dfc"
# Browsers fetch the manifest and the service worker without asking the person to log in first.
PUBLIC_ENDPOINTS = {"pages.login", "pages.manifest", "pages.service_worker"}
FORM_ONLY_FIELDS = (auth.CSRF_FIELD, "next", idempotency.FORM_FIELD)
FORM_SENT_BEFORE = (
    "This form was already sent with other values, so it was not sent again: check them and "
    "send it once more."
)

# The shape of job_json() with nothing in it: JS clones rows rendered from it (<template>).
BLANK_JOB = {
    "id": "", "prompt": "", "seed": 0, "grid": defaults.GRID_DEFAULT, "model": "",
    "params": {}, "status": JobStatus.QUEUED.value, "progress": 0.0, "position": None,
    "attempts": 0, "error": None, "parent_id": None, "created_at": None, "started_at": None,
    "finished_at": None, "grid_url": None, "image_urls": [], "thumb_url": None, "scores": None,
    "best_image": None, "preview_url": None, "preview_steps": None, "starred": False,
}


def settings():
    return current_app.config["DALLEQ"]


def public(rows: list[dict]) -> list[dict]:
    """Rows as the API's job objects, so templates and static JS read the same fields."""
    return [job_json(row, request.script_root) for row in rows]


def form_fields() -> dict:
    """The posted form without the fields that only steer this page (token, return path)."""
    return {key: value for key, value in request.form.items() if key not in FORM_ONLY_FIELDS}


def form_submission_key(scope: str, form: dict):
    """The key this rendering of the form carries (index.html, job.html): the same rendered form
    sent again (a double tap, a resend after a lost answer, back and send) returns its first job."""
    return idempotency.submission_key(request.form.get(idempotency.FORM_FIELD), scope, form)


def safe_next(target: str | None, fallback: str = "/") -> str:
    """`target` when it is a path on this site, else `fallback`: no open redirects.

    Refuses schemes, hosts, protocol-relative `//host` and `/\\host` (browsers read a backslash
    as a slash), and control characters.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return fallback
    if any(ord(char) < 32 or char == "\\" for char in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    return target


def back_to(default_url: str) -> str:
    """Where a button's redirect goes: its form's `next` when local, else `default_url`."""
    target = safe_next(request.form.get("next"), "")
    return request.script_root + target if target else default_url


@bp.before_request
def guard():
    """Log-in first (when a password is set), then CSRF on every form post."""
    if request.endpoint not in PUBLIC_ENDPOINTS and not auth.is_logged_in():
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        auth.require_login()
    if request.method in auth.UNSAFE_METHODS:
        auth.check_same_origin()
        auth.check_form_csrf(request.form.get(auth.CSRF_FIELD))
    return None


@bp.app_context_processor
def page_context():
    """What base.html needs on every page, error pages included: reads only, no session writes."""
    return {
        "has_password": bool(settings().password),
        "is_logged_in": auth.is_logged_in(),
        "notice": current_app.config.get("DALLEQ_NOTICE"),
        "theme_color": THEME_COLOR,
        "form_key": idempotency.new_form_key,
    }


# -- submit and the live queue ----------------------------------------------------------------
def form_defaults() -> dict:
    """The submit form's starting values: shared/API.md's defaults as the inputs show them."""
    params = validation.DEFAULT_PARAMS
    return {
        "grid": defaults.GRID_DEFAULT,
        "model": settings().default_model,
        **params,
        "top_p": "" if params["top_p"] is None else params["top_p"],
        "seed": "",
        "prompt": "",
    }


def queue_order(active: list[dict]) -> list[dict]:
    """Running jobs first, then queued ones by their place in line."""
    return sorted(
        active, key=lambda job: (job["status"] != JobStatus.RUNNING.value, job["position"] or 0)
    )


def render_index(
    form: dict | None = None,
    error: str | None = None,
    status: int = 200,
    *,
    error_field: str | None = None,
    shared_note: str | None = None,
):
    """The queue page; after a refused form, `error` is shown next to the input `error_field`
    (templates/_field_error.html), with the Advanced section open when that input is in it;
    `shared_note` says what became of text shared into the form (server/sharing.py)."""
    services().queue.expire_if_due()
    now = utcnow()
    catalog = services().catalog
    active, _ = catalog.page(statuses=ACTIVE_STATUSES, limit=defaults.LIST_LIMIT_MAX)
    recent, _ = catalog.page(statuses=FINISHED, limit=RECENT_COUNT)
    page = render_template(
        "index.html",
        form=form_defaults() | (form or {}),
        error=error,
        error_field=error_field,
        shared_note=shared_note,
        active=queue_order(public(active)),
        recent=public(recent),
        blank_job=BLANK_JOB,
        served=sightings.served_models(services().engine),
        workers=worker_states.worker_views(services().engine, now=now),
        worker_words=lambda view: worker_states.words(view, now),
        grid_sizes=range(defaults.GRID_MIN, defaults.GRID_MAX + 1),
        limits=defaults,
    )
    return page, status


@bp.get("/")
def index():
    """The queue page; a shared link (?prompt=, or the share sheet's ?text=&title=&url=) fills
    the form's prompt (server/sharing.py) and never queues by itself."""
    prompt, note = sharing.shared_prompt(request.args)
    return render_index({"prompt": prompt} if prompt else None, shared_note=note)


@bp.post("/jobs")
def submit():
    form = form_fields()
    try:
        key = form_submission_key(idempotency.SUBMIT_SCOPE, form)
        fields = validation.new_job_fields(form, settings().default_model)
        job, _ = services().queue.submit_once(fields, key)
    except InvalidInput as error:
        return render_index(form, error.message, 400, error_field=error.field)
    except KeyReused:
        return render_index(form, FORM_SENT_BEFORE, 422)
    flash(f"Queued “{shorten(job['prompt'])}”", "queued")
    no_worker = sightings.served_models(services().engine).warning(job["model"])
    if no_worker:
        flash(no_worker, "no-worker")
    return redirect(url_for("pages.index", _anchor=f"job-{job['id']}"), 303)


def shorten(text: str) -> str:
    return text if len(text) <= FLASH_PROMPT_CHARS else text[: FLASH_PROMPT_CHARS - 1] + "…"


# -- gallery ----------------------------------------------------------------------------------
@bp.get("/gallery")
def gallery():
    query = request.args.get("q", "").strip()
    starred = validation.starred_filter(request.args.get("starred"))
    rows, next_cursor = services().catalog.page(
        statuses=[JobStatus.DONE.value],
        query=query,
        limit=GALLERY_PAGE_SIZE,
        cursor=request.args.get("cursor") or None,
        starred=starred,
    )
    return render_template(
        "gallery.html",
        jobs=public(rows),
        query=query,
        starred=starred,
        next_cursor=next_cursor,
        page_size=GALLERY_PAGE_SIZE,
        blank_job=BLANK_JOB,
    )


# -- one job ----------------------------------------------------------------------------------
def render_job(
    row: dict,
    *,
    edit: dict | None = None,
    error: str | None = None,
    error_field: str | None = None,
    status=200,
):
    """The job page; after a refused rerun, `edit` holds what was typed and `error` is shown next
    to the input `error_field` of the edit form, which is then open."""
    job = job_json(row, request.script_root)
    page = render_template(
        "job.html",
        job=job,
        tile_order=ranking.best_first(job["scores"], len(job["image_urls"])),
        family=public(services().catalog.family(row)),
        meta=result_meta(row),
        is_active=job["status"] in ACTIVE_STATUSES,
        cancel_requested=bool(row.get("cancel_requested")),
        edit=edit,
        error=error,
        error_field=error_field,
        grid_sizes=range(defaults.GRID_MIN, defaults.GRID_MAX + 1),
    )
    return page, status


@bp.get("/jobs/<job_id>")
def job(job_id):
    services().queue.expire_if_due()
    return render_job(services().catalog.get(job_id))


@bp.post("/jobs/<job_id>/rerun")
def rerun(job_id):
    """Rerun with new seeds, the same seed, or an edited prompt (validation.rerun_fields)."""
    parent = services().catalog.get(job_id)
    form = form_fields()
    try:
        key = form_submission_key(idempotency.rerun_scope(parent["id"]), form)
        fields = validation.rerun_fields(form, without_top_p_if_cleared(parent, form))
        new_job, _ = services().queue.submit_once(fields, key, parent_id=parent["id"])
    except InvalidInput as error:
        return render_job(
            parent, edit=form, error=error.message, error_field=error.field, status=400
        )
    except KeyReused:
        return render_job(parent, edit=form, error=FORM_SENT_BEFORE, status=422)
    return redirect(url_for("pages.job", job_id=new_job["id"]), 303)


def without_top_p_if_cleared(parent: dict, form: dict) -> dict:
    """The edit form shows top_p "off" as an empty box: sent empty, it means off, not the
    parent's value (which the API's rerun keeps for an absent or empty field)."""
    if "top_p" in form and not form["top_p"].strip():
        return parent | {"top_p": None}
    return parent


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id):
    services().queue.cancel(job_id)
    return redirect(back_to(url_for("pages.job", job_id=job_id)), 303)


@bp.post("/jobs/<job_id>/star")
def star(job_id):
    """The star's form (templates/_star.html) where no JS sends it to the API."""
    value = request.form.get("starred", "")
    if value not in validation.STARRED_FILTER:
        raise InvalidInput("starred must be true or false", code="invalid_starred")
    services().queue.set_starred(job_id, validation.STARRED_FILTER[value])
    return redirect(back_to(url_for("pages.job", job_id=job_id)), 303)


@bp.post("/jobs/<job_id>/delete")
def delete(job_id):
    """Delete the job and its files, then go back to the gallery (its page is gone)."""
    services().storage.remove(services().queue.delete(job_id))
    flash("Deleted.", "deleted")
    return redirect(back_to(url_for("pages.gallery")), 303)


@bp.get("/jobs")
@bp.get("/jobs/<job_id>/<any(rerun, cancel, delete, star):action>")
def after_a_form(job_id=None, action=None):
    """A reload or a shared link of a form's address (after a 400 page) goes to its page."""
    if job_id is None:
        return redirect(url_for("pages.index"))
    return redirect(url_for("pages.job", job_id=job_id))


# -- the optional password --------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login():
    next_path = safe_next(request.values.get("next"))
    if not settings().password or (request.method == "GET" and auth.is_logged_in()):
        return redirect(request.script_root + next_path, 303)
    if request.method == "POST":
        if auth.log_in(request.form.get("password", "")):
            return redirect(request.script_root + next_path, 303)
        # One message for every failure: nothing tells a guesser what was wrong.
        return render_template("login.html", next=next_path, error="Wrong password."), 401
    return render_template("login.html", next=next_path, error=None)


@bp.post("/logout")
def logout():
    auth.log_out()
    return redirect(url_for("pages.login"), 303)


# -- installable web app ----------------------------------------------------------------------
@bp.get("/manifest.webmanifest")
def manifest():
    """The web app manifest, so a phone can put the queue on its home screen."""
    icons = [
        {
            "src": url_for("static", filename=f"icon-{side}.png"),
            "sizes": f"{side}x{side}",
            "type": "image/png",
            "purpose": "any",
        }
        for side in (192, 512)
    ]
    body = {
        "name": "dalle-queue",
        "short_name": "dalle-queue",
        "description": "Queue prompts for your own image model at home and browse the results.",
        "start_url": url_for("pages.index"),
        "scope": url_for("pages.index"),
        "display": "standalone",
        "background_color": "#111318",
        "theme_color": THEME_COLOR,
        "icons": icons,
        # Android's share sheet opens the form filled (server/sharing.py); GET, so nothing is
        # queued before the person taps "Queue it".
        "share_target": {
            "action": url_for("pages.index"),
            "method": "GET",
            "params": {"title": "title", "text": "text", "url": "url"},
        },
    }
    return current_app.response_class(
        json.dumps(body, ensure_ascii=False), mimetype="application/manifest+json"
    )


@bp.get("/sw.js")
def service_worker():
    """The service worker, served from the root so its scope covers every page.

    It shows "done" notifications (Android allows them only from a service worker), keeps the
    app shell (the queue page and static files, never job images or API answers) for opening
    offline, and sends ideas saved offline by Background Sync (static/sw.js).
    """
    response = send_from_directory(current_app.static_folder, "sw.js", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response
