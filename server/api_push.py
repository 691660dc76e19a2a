"""The push API, /api/v1/push (issue 18): the server's VAPID public key, and the browsers that want
a notification when a job ends. Guarded like the people's API (login and CSRF)."""

from flask import Blueprint, jsonify

from . import auth, services
from .api_jobs import json_body
from .clock import utcnow
from .push_subscriptions import endpoint_from, subscription_from

bp = Blueprint("api_push", __name__, url_prefix="/api/v1/push")


@bp.before_request
def guard():
    auth.require_login()
    auth.check_api_csrf()


@bp.get("/key")
def key():
    """The applicationServerKey a page passes to pushManager.subscribe."""
    return jsonify({"public_key": services().push_public_key})


@bp.post("/subscriptions")
def subscribe():
    subscription = subscription_from(json_body())
    is_new = services().push_subscriptions.add(subscription, now=utcnow())
    return jsonify({"endpoint": subscription.endpoint}), 201 if is_new else 200


@bp.delete("/subscriptions")
def unsubscribe():
    services().push_subscriptions.remove(endpoint_from(json_body()))
    return "", 204
