"""The "Notify me when jobs finish" control (static/push.js) in Chromium at a phone's size.

Headless Chromium reaches no push service, so subscribing may fail here: the test holds the
control to showing its state and, whatever the browser answers, a clear outcome.
"""

import re

import pytest

from tests.test_browser import WAIT_MS, browser, phone, phone_page  # noqa: F401

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser

IPHONE_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


def test_the_control_shows_its_state_and_a_clear_outcome_when_tapped(phone):  # noqa: F811
    phone.goto("/")
    control = phone.locator("[data-push]")
    expect(control).to_be_visible()
    expect(control).to_have_attribute("data-state", "off")
    expect(control.locator("[data-push-status]")).to_have_text("Off.")
    control.get_by_role("button", name="Turn on").click()
    expect(control.locator("[data-push-status]")).to_have_text(
        re.compile(r"^(On: this device|Could not turn on: .+)"), timeout=WAIT_MS
    )


def test_an_iphone_outside_the_home_screen_is_told_to_add_it_first(browser, live_server):  # noqa: F811
    context, page = phone_page(browser, live_server.url, user_agent=IPHONE_AGENT)
    try:
        page.goto("/")
        control = page.locator("[data-push]")
        expect(control).to_have_attribute("data-state", "unsupported")
        expect(control).to_contain_text("add to Home Screen first")
        expect(control.get_by_role("button")).to_be_hidden()
    finally:
        context.close()
