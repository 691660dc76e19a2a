"""One path for every error (STYLE 24, after datasette's handle_exception).

Under /api/ the answer is shared/API.md's `{"error": {"code", "message"}}`; elsewhere a readable
page. Unexpected exceptions are logged with their traceback and answered as a plain 500, never
as an HTML traceback.
"""

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .errors import DalleqError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, code: str, message: str):
    if wants_json():
        response = jsonify({"error": {"code": code, "message": message}})
    else:
        response = render_template("error.html", status=status, message=message)
    return response, status


def init_app(app: Flask) -> None:
    @app.errorhandler(DalleqError)
    def handle_dalleq_error(error: DalleqError):
        return error_response(error.status, error.code, error.message)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        status = error.code or 500
        message = error.description or error.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request is larger than this server accepts ({limit // 2**20} MB)"
        return error_response(status, HTTP_CODES.get(status, "error"), message)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "something went wrong on the server")
