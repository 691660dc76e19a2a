"""GET /api/v1/openapi.json (shared/API-1.1.md): a valid OpenAPI 3.1 document of every route.

Drift tests (STYLE 34) in the manner of tests/test_api_doc.py: every /api/v1 route the app serves
is a path of the document with the same methods, and every path of the document is served.
"""

import re

import pytest
from openapi_spec_validator import validate

from server import create_app, load_settings

API_PREFIX = "/api/v1/"
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # werkzeug adds them to every route
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def flask_to_openapi(rule: str) -> str:
    """`/api/v1/jobs/<job_id>` as the document writes it: `/api/v1/jobs/{job_id}`."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


@pytest.fixture
def document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.json


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_every_api_route_is_in_the_document_with_its_methods(app, document):
    served = {
        (flask_to_openapi(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API_PREFIX)
        for method in rule.methods - IMPLICIT_METHODS
    }
    described = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item.keys() & HTTP_METHODS
    }
    assert sorted(served - described) == [], "routes the document lacks"
    assert sorted(described - served) == [], "operations of the document no route serves"


def test_every_operation_answers_errors_in_the_error_shape(document):
    for path, item in document["paths"].items():
        for method in item.keys() & HTTP_METHODS:
            for status, answer in item[method]["responses"].items():
                if status.startswith("4"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_the_document_is_served_without_logging_in(tmp_path):
    settings = load_settings(
        {}, database_url=f"sqlite:///{tmp_path / 'queue.db'}", data_dir=str(tmp_path / "data"),
        password="secret", secret_key="secret",
    )  # fmt: skip
    app = create_app(settings)
    client = app.test_client()
    assert client.get("/api/v1/jobs").status_code == 401
    document = client.get("/api/v1/openapi.json").json
    assert document["components"]["securitySchemes"]["session"]["in"] == "cookie"
    app.extensions["dalleq"].engine.dispose()


def test_the_document_names_the_url_prefix_as_its_server(app):
    response = app.test_client().get("/api/v1/openapi.json", base_url="http://localhost/q")
    assert response.json["servers"] == [{"url": "/q"}]
