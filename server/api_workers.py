"""GET /api/v1/workers: each worker's state as the queue page shows it (issue 19,
server/worker_states.py), so static/worker_states.js keeps the page's "Workers" line live.

An addition outside shared/API.md, like the push endpoints; docs/api.md describes it.
"""

from flask import Blueprint, jsonify

from . import auth, services, worker_states
from .defaults import WORKER_SEEN_MINUTES

bp = Blueprint("api_workers", __name__, url_prefix="/api/v1/workers")


@bp.before_request
def guard():
    auth.require_login()
    auth.check_api_csrf()


@bp.get("")
def listing():
    views = worker_states.worker_views(services().engine)
    return jsonify(
        {"workers": [view.json() for view in views], "seen_minutes": WORKER_SEEN_MINUTES}
    )
