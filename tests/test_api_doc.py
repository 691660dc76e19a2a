"""Drift tests (STYLE 34) for docs/api.md: it documents exactly the endpoints the server routes.

Each documented endpoint is matched against the app's route table (werkzeug's own matcher, so
`<id>` fills a route's `<job_id>`), and every route under /api/ and /files/ must be documented.
"""

import re
from pathlib import Path

import pytest
from werkzeug.exceptions import HTTPException

from tests.helpers import REPO

API_DOC = REPO / "docs" / "api.md"
ENDPOINT_HEADING = re.compile(r"^### `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`$", re.MULTILINE)
DOCUMENTED_PREFIXES = ("/api/", "/files/")
SAMPLE_ARGUMENT = "x1"  # what a documented `<name>` becomes when the path is matched
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # werkzeug adds them to every route


def documented_endpoints() -> list[tuple[str, str]]:
    return ENDPOINT_HEADING.findall(API_DOC.read_text())


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    """The route table of an app built by the factory, as a werkzeug map adapter."""
    from server import create_app, load_settings

    folder: Path = tmp_path_factory.mktemp("routes")
    settings = load_settings(
        {}, database_url=f"sqlite:///{folder / 'queue.db'}", data_dir=str(folder / "data"),
        worker_token="token", secret_key="secret",
    )  # fmt: skip
    app = create_app(settings)
    return app.url_map


def endpoint_of(url_map, method: str, path: str) -> str | None:
    """The view a documented method and path reach; None when no route takes them."""
    concrete = re.sub(r"<[^>]+>", SAMPLE_ARGUMENT, path)
    try:
        endpoint, _ = url_map.bind("localhost").match(concrete, method=method)
    except HTTPException:  # NotFound, MethodNotAllowed
        return None
    return endpoint


def test_the_api_doc_lists_the_endpoints():
    assert len(documented_endpoints()) >= 10
    assert len(set(documented_endpoints())) == len(documented_endpoints()), "a heading repeats"


@pytest.mark.parametrize("method, path", documented_endpoints())
def test_every_documented_endpoint_is_routed(routes, method, path):
    assert endpoint_of(routes, method, path), f"docs/api.md has {method} {path}; no route serves it"


def test_every_api_route_is_documented(routes):
    documented = {
        (method, endpoint_of(routes, method, path)) for method, path in documented_endpoints()
    }
    served = {
        (method, rule.endpoint)
        for rule in routes.iter_rules()
        if rule.rule.startswith(DOCUMENTED_PREFIXES)
        for method in rule.methods - IMPLICIT_METHODS
    }
    missing = sorted(f"{method} {endpoint}" for method, endpoint in served - documented)
    assert not missing, f"document these in docs/api.md: {missing}"


def test_every_error_code_the_server_raises_is_documented():
    from server.error_pages import HTTP_CODES

    sources = "\n".join(path.read_text() for path in (REPO / "server").glob("*.py"))
    codes = set(re.findall(r'code="([a-z_]+)"', sources)) | set(HTTP_CODES.values())
    text = API_DOC.read_text()
    missing = sorted(code for code in codes if f"`{code}`" not in text and f" {code}`" not in text)
    assert not missing, f"document these error codes in docs/api.md: {missing}"
