"""Flask's signed-cookie sessions, made cheap enough for the hot API paths.

Flask builds a new itsdangerous serializer on every request (SecureCookieSessionInterface
.get_signing_serializer), which costs more CPU than a claim's SQL (bench/bench_server.py). The
secret key does not change while the app runs, so one serializer serves every request. Worker calls
authenticate with a bearer token and never use a session, so they skip the cookie entirely, and a
request with no Cookie header (a script) gets its new, empty session without parsing one.
"""

from flask.sessions import SecureCookieSessionInterface

SESSIONLESS_PREFIX = "/api/v1/worker/"


class CachedCookieSessionInterface(SecureCookieSessionInterface):
    def __init__(self):
        self._serializer = None
        self._serializer_key = None

    def get_signing_serializer(self, app):
        if self._serializer is None or self._serializer_key != app.secret_key:
            self._serializer = super().get_signing_serializer(app)
            self._serializer_key = app.secret_key
        return self._serializer

    def open_session(self, app, request):
        if request.path.startswith(SESSIONLESS_PREFIX):
            return self.null_session_class()
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()  # what Flask opens for a request without our cookie
        return super().open_session(app, request)
