"""The push API (issue 18): the VAPID key, kept in the data folder, and checked subscriptions."""

import os
import stat

import pytest

from server import create_app, defaults, load_settings
from server.config import push_contact
from server.errors import ConfigError
from server.vapid import VAPID_KEY_FILE
from tests.fake_push import Browser, b64url, unb64url

ENDPOINT = "https://push.example.net/send/abc"


def test_the_key_is_made_once_kept_private_and_served(settings, client):
    public_key = client.get("/api/v1/push/key").json["public_key"]
    point = unb64url(public_key)
    assert len(point) == 65 and point[0] == 4  # an uncompressed P-256 point
    path = os.path.join(settings.data_dir, VAPID_KEY_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = create_app(settings)  # a restart keeps the key, so subscriptions keep working
    assert again.test_client().get("/api/v1/push/key").json["public_key"] == public_key
    again.extensions["dalleq"].engine.dispose()


def test_subscribe_then_unsubscribe(client):
    subscription = Browser().subscription(ENDPOINT)
    created = client.post("/api/v1/push/subscriptions", json=subscription)
    assert created.status_code == 201
    assert created.json == {"endpoint": ENDPOINT}
    assert client.post("/api/v1/push/subscriptions", json=subscription).status_code == 200
    assert client.delete("/api/v1/push/subscriptions", json={"endpoint": ENDPOINT}).status_code == 204
    assert client.post("/api/v1/push/subscriptions", json=subscription).status_code == 201


def good_keys() -> dict:
    return Browser().subscription(ENDPOINT)["keys"]


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, "invalid_endpoint"),
        ({"endpoint": 5, "keys": good_keys()}, "invalid_endpoint"),
        ({"endpoint": "http://push.example.net/x", "keys": good_keys()}, "invalid_endpoint"),
        ({"endpoint": "ftp://push.example.net/x", "keys": good_keys()}, "invalid_endpoint"),
        ({"endpoint": "https:///no-host", "keys": good_keys()}, "invalid_endpoint"),
        ({"endpoint": "https://[::1/x", "keys": good_keys()}, "invalid_endpoint"),
        ({"endpoint": "https://a.example/" + "x" * 2048, "keys": good_keys()}, "invalid_endpoint"),
        ({"endpoint": ENDPOINT}, "invalid_keys"),
        ({"endpoint": ENDPOINT, "keys": "p256dh"}, "invalid_keys"),
        ({"endpoint": ENDPOINT, "keys": {**good_keys(), "p256dh": "!!"}}, "invalid_p256dh"),
        ({"endpoint": ENDPOINT, "keys": {**good_keys(), "p256dh": b64url(b"\x04" * 33)}},
         "invalid_p256dh"),
        ({"endpoint": ENDPOINT, "keys": {**good_keys(), "p256dh": b64url(b"\x04" + b"\1" * 64)}},
         "invalid_p256dh"),  # 65 bytes, but not a point on the curve
        ({"endpoint": ENDPOINT, "keys": {**good_keys(), "auth": b64url(b"\0" * 15)}},
         "invalid_auth"),
        ({"endpoint": ENDPOINT, "keys": {**good_keys(), "auth": None}}, "invalid_auth"),
        ({"endpoint": ENDPOINT, "keys": {**good_keys(), "auth": "é" * 22}}, "invalid_auth"),
    ],
)
def test_a_bad_subscription_is_refused_with_the_field_named(client, body, code):
    response = client.post("/api/v1/push/subscriptions", json=body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_http_is_allowed_only_to_this_machine(client, host):
    subscription = Browser().subscription(f"http://{host}:9/push")
    assert client.post("/api/v1/push/subscriptions", json=subscription).status_code == 201


def test_a_delete_needs_an_endpoint(client):
    response = client.delete("/api/v1/push/subscriptions", json={})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_endpoint"


def test_subscriptions_are_capped(client):
    for index in range(defaults.PUSH_SUBSCRIPTIONS_MAX):
        subscription = Browser().subscription(f"{ENDPOINT}/{index}")
        assert client.post("/api/v1/push/subscriptions", json=subscription).status_code == 201
    one_more = client.post("/api/v1/push/subscriptions",
                           json=Browser().subscription(f"{ENDPOINT}/more"))
    assert one_more.status_code == 409
    assert one_more.json["error"]["code"] == "too_many_subscriptions"


def test_the_push_api_needs_the_login_when_there_is_a_password(settings):
    app = create_app(settings.replace(password="secret"))
    client = app.test_client()
    assert client.get("/api/v1/push/key").status_code == 401
    subscription = Browser().subscription(ENDPOINT)
    assert client.post("/api/v1/push/subscriptions", json=subscription).status_code == 401
    app.extensions["dalleq"].engine.dispose()


@pytest.mark.parametrize(
    "contact, public_url, subject",
    [
        ("mailto:me@example.org", "https://box.tailnet.ts.net", "mailto:me@example.org"),
        (None, "https://box.tailnet.ts.net", "https://box.tailnet.ts.net"),
        (None, "http://192.168.1.5:8000", defaults.PUSH_CONTACT),
        (None, None, defaults.PUSH_CONTACT),
    ],
)
def test_the_vapid_subject(contact, public_url, subject):
    settings = load_settings({}, push_contact=contact, public_url=public_url)
    assert push_contact(settings) == subject


@pytest.mark.parametrize("contact", ["me@example.org", "http://example.org", "mailto:", "https://"])
def test_a_push_contact_that_is_not_mailto_or_https_stops_the_server(contact):
    with pytest.raises(ConfigError, match="DALLEQ_PUSH_CONTACT"):
        load_settings({"DALLEQ_PUSH_CONTACT": contact})
