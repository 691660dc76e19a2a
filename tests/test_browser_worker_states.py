"""The queue page's "Workers" list in a real Chromium at 390x844 (issue 19): a worker that says
it is paused shows why, and the list follows its next report without a reload.

The fixtures are tests/test_browser.py's; waits are Playwright expectations, never sleeps.
"""

import pytest
import requests

from tests.conftest import WORKER_TOKEN
from tests.test_browser import (  # noqa: F401 (browser and phone are fixtures)
    HTTP_TIMEOUT_SECONDS,
    browser,
    phone,
)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser


def report(url: str, state: str, reason: str | None = None) -> None:
    response = requests.post(
        f"{url}/api/v1/worker/status",
        json={"worker": "gpu-box", "state": state, "reason": reason},
        headers={"Authorization": f"Bearer {WORKER_TOKEN}"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert response.status_code == 200, response.text


def test_a_paused_worker_shows_why_and_the_list_follows_it(phone, live_server):  # noqa: F811
    report(live_server.url, "paused", "GPU busy (steam is running)")
    phone.goto("/")
    worker = phone.locator('.worker[data-worker="gpu-box"]')
    expect(worker).to_have_text("gpu-box · paused: GPU busy (steam is running)")
    expect(worker).to_be_in_viewport()
    box = worker.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # no sideways scrolling on a phone
    report(live_server.url, "idle")
    expect(worker).to_have_text("gpu-box · idle")  # static/worker_states.js, no reload
