"""Sessions, login throttling, the Host check, security headers, image caching and early refusals
(issue 16, items 5-11). Request-level checks use the Flask test client; refusing a body before it
is read needs the real server, so those tests speak raw HTTP to a ServerProcess."""

import json
import socket

import pytest
import requests

from server import create_app
from tests.conftest import WORKER_TOKEN
from tests.helpers import ServerProcess
from tests.test_pages import done_job, fetched, log_in, page_token

HTTP_TIMEOUT_SECONDS = 10


@pytest.fixture
def locked_settings(settings):
    return settings.replace(password="pw")


@pytest.fixture
def apps():
    """Apps made by a test, their engines closed afterwards."""
    made = []

    def make(settings):
        made.append(create_app(settings))
        return made[-1]

    yield make
    for app in made:
        app.extensions["dalleq"].engine.dispose()


def session_cookie(client) -> str:
    return client.get_cookie("session").value


def submit_with(app, cookie: str):
    """POST /api/v1/jobs from a fresh client carrying a copy of `cookie` and its CSRF token."""
    client = app.test_client()
    client.set_cookie("session", cookie)
    is_logged_in = client.get("/").status_code == 200
    token = page_token(client) if is_logged_in else "none: the page sends us to log in"
    return client.post("/api/v1/jobs", json={"prompt": "a fox"}, headers={"X-CSRF-Token": token})


# -- 5: revocable sessions ------------------------------------------------------------------------
def test_logout_ends_the_session_even_for_a_copy_of_its_cookie(apps, locked_settings):
    app = apps(locked_settings)
    client = app.test_client()
    assert log_in(client).status_code == 303
    copied = session_cookie(client)
    assert submit_with(app, copied).status_code == 201

    client.post("/logout", data={"csrf_token": page_token(client)})
    assert submit_with(app, copied).status_code == 401
    assert client.get("/").status_code == 302  # back to the login page


def test_a_new_password_ends_every_session(apps, locked_settings):
    before = apps(locked_settings)
    client = before.test_client()
    log_in(client)
    copied = session_cookie(client)
    assert submit_with(before, copied).status_code == 201

    after = apps(locked_settings.replace(password="a new one"))  # a restart with a new password
    assert submit_with(after, copied).status_code == 401
    assert submit_with(apps(locked_settings), copied).status_code == 201  # same password: kept


# -- 6: login throttling --------------------------------------------------------------------------
def test_wrong_passwords_are_throttled_per_client_then_for_everyone(apps, locked_settings):
    app = apps(locked_settings)

    def attempt(address, password="wrong", forwarded=None):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        token = page_token(client, "/login")
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return client.post("/login", data={"csrf_token": token, "password": password},
                           headers=headers)

    statuses = [attempt("100.64.0.1").status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    refused = attempt("100.64.0.1", password="pw")  # the right one waits too: guessing gains 0
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "text/html" in refused.content_type
    assert "too many wrong passwords" in refused.get_data(as_text=True)

    # Behind tailscale serve every peer is 127.0.0.1: the proxy's X-Forwarded-For names the client.
    assert attempt("127.0.0.1", forwarded="100.64.0.1").status_code == 429
    assert attempt("127.0.0.1", forwarded="spoofed, 100.64.0.2", password="pw").status_code == 303
    for number in range(3, 60 - 10 + 3):  # 60 failures in all reach the global limit
        assert attempt(f"100.64.0.{number}").status_code == 401
    assert attempt("100.64.1.1", password="pw").status_code == 429


# -- 7: public URL --------------------------------------------------------------------------------
def test_an_https_public_url_makes_the_cookie_secure_and_sends_hsts(apps, locked_settings):
    app = apps(locked_settings.replace(public_url="https://box.tailnet.ts.net"))
    client = app.test_client()
    page = client.get("/login", headers={"Host": "box.tailnet.ts.net"})
    assert "Secure" in page.headers["Set-Cookie"]
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    plain = apps(locked_settings).test_client().get("/login")
    assert "Secure" not in plain.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in plain.headers


@pytest.mark.parametrize("url", ["box.ts.net", "ftp://box", "https://", "http://[::1"])
def test_a_public_url_must_be_an_http_url_with_a_host(settings, url):
    from server.errors import ConfigError

    with pytest.raises(ConfigError, match="DALLEQ_PUBLIC_URL"):
        settings.replace(public_url=url)


# -- 8: Host check --------------------------------------------------------------------------------
def test_a_foreign_host_is_refused_before_anything_changes(client):
    rebound = {"Host": "attacker.example", "Origin": "http://attacker.example"}
    response = client.post("/api/v1/jobs", json={"prompt": "a fox"}, headers=rebound)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_host"
    assert client.get("/api/v1/jobs").json["jobs"] == []
    page = client.get("/", headers={"Host": "attacker.example:8000"})
    assert page.status_code == 400 and "text/html" in page.content_type
    proxied = client.get("/api/v1/jobs", headers={"X-Forwarded-Host": "attacker.example"})
    assert proxied.status_code == 400


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:8000", "[::1]:8000", "BOX.tailnet.ts.net."])
def test_loopback_and_the_public_host_are_accepted(apps, settings, host):
    client = apps(settings.replace(public_url="https://box.tailnet.ts.net")).test_client()
    assert client.get("/api/v1/jobs", headers={"Host": host}).status_code == 200


def test_the_bound_address_is_accepted_and_a_wildcard_takes_the_machines_own(apps, settings):
    from server.protection import allow_bound_address, interface_addresses

    bound = apps(settings)
    allow_bound_address(bound, "192.0.2.7")
    assert bound.test_client().get("/", headers={"Host": "192.0.2.7:8000"}).status_code == 200
    assert bound.test_client().get("/", headers={"Host": "192.0.2.8"}).status_code == 400

    wildcard = apps(settings)
    allow_bound_address(wildcard, "0.0.0.0")
    for address in interface_addresses():
        host = f"[{address}]" if ":" in address else address
        assert wildcard.test_client().get("/", headers={"Host": host}).status_code == 200
    assert wildcard.test_client().get("/", headers={"Host": socket.gethostname()}).status_code == 200
    assert wildcard.test_client().get("/", headers={"Host": "attacker.example"}).status_code == 400


def test_workers_are_not_host_checked(client, worker):
    response = worker.client.post("/api/v1/worker/claim", json={"worker": "w", "models": ["mini"]},
                                  headers={**worker.headers, "Host": "gpu-box.lan"})
    assert response.status_code == 204


# -- 9: security headers --------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/gallery", "/login", "/api/v1/jobs", "/api/v1/jobs/nope",
                                  "/static/app.js", "/sw.js", "/manifest.webmanifest"])
def test_every_answer_carries_the_security_headers(client, path):
    response = fetched(client, path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_styles_or_scripts(client, worker):
    done = done_job(client, worker)
    for path in ["/", "/gallery", f"/jobs/{done}", "/login"]:
        html = client.get(path).get_data(as_text=True)
        assert " style=" not in html and "<script>" not in html, path


# -- 11: images -----------------------------------------------------------------------------------
def test_images_of_a_password_server_are_private_and_revalidated(apps, locked_settings, worker):
    from tests.conftest import WorkerActions

    app = apps(locked_settings)
    client = app.test_client()
    log_in(client)
    job_id = done_job(client, WorkerActions(client))
    response = fetched(client, f"/files/{job_id}/tile_0.png")
    assert response.status_code == 200
    cache = response.cache_control
    assert cache.private and not cache.public and cache.no_cache
    assert response.headers["ETag"]


def test_a_deleted_jobs_images_are_gone(client, worker):
    job_id = done_job(client, worker)
    response = fetched(client, f"/files/{job_id}/grid.png")
    assert response.status_code == 200 and response.cache_control.no_cache
    etag = response.headers["ETag"]
    csrf = {"X-CSRF-Token": page_token(client)}
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=csrf).status_code == 204
    again = fetched(client, f"/files/{job_id}/grid.png")
    assert again.status_code == 404
    with client.get(f"/files/{job_id}/grid.png", headers={"If-None-Match": etag}) as revalidated:
        pass
    assert revalidated.status_code == 404  # a browser's cached copy is not confirmed


def test_the_service_worker_caches_only_the_app_shell(client):
    """Job images and API answers are never kept (tests/test_browser_offline.py checks the
    cache itself): the worker's cache is written only for the queue page and static/."""
    script = fetched(client, "/sw.js").get_data(as_text=True)
    assert script.count("cache.put(") == 2 and "/files/" not in script
    assert 'STATIC_PREFIX = `${SCOPE.pathname}static/`' in script


# -- 10: big bodies are refused from their headers ------------------------------------------------
@pytest.fixture
def small_server(tmp_path):
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN},
                           extra_args=["--max-upload-mb", "2"]).start()
    yield server
    server.stop()


def answer_before_the_body(url: str, head: str) -> tuple[int, dict, bytes]:
    """Send only the request line and headers; return the status, headers and body answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HTTP_TIMEOUT_SECONDS) as sock:
        sock.sendall(head.encode("latin-1"))
        received = b""
        # The refusal closes the connection, so read to its end (a recv times out, failing the
        # test, if the server waits for the body instead).
        while chunk := sock.recv(65536):
            received += chunk
    head_part, _, body = received.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("path, authorization, status, code", [
    ("/api/v1/worker/jobs/x/result", "", 401, "bad_worker_token"),
    ("/api/v1/worker/jobs/x/result", "Bearer nope", 401, "bad_worker_token"),
    ("/api/v1/worker/jobs/x/result", f"Bearer {WORKER_TOKEN}", 413, "too_large"),
    ("/api/v1/jobs", "", 413, "too_large"),
])
def test_a_big_body_is_refused_before_it_is_sent(small_server, path, authorization, status, code):
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {250 * 2**20}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            + (f"Authorization: {authorization}\r\n" if authorization else "") + "\r\n")
    answered, headers, body = answer_before_the_body(small_server.url, head)
    assert answered == status
    assert json.loads(body)["error"]["code"] == code, body
    assert headers["Connection"] == "close"


def test_bodies_within_the_limits_are_still_read(small_server):
    response = requests.post(small_server.url + "/api/v1/jobs", json={"prompt": "a fox"},
                             timeout=HTTP_TIMEOUT_SECONDS)
    assert response.status_code == 201
    unauthenticated = requests.post(small_server.url + "/api/v1/worker/claim", data=b"{}",
                                    timeout=HTTP_TIMEOUT_SECONDS)
    assert unauthenticated.status_code == 401  # refused early, as JSON all the same
    assert unauthenticated.json()["error"]["code"] == "bad_worker_token"
