"""Rough edges a newcomer hit on the phone pages (issue 18), each in a real Chromium at 390x844.

The fixtures and helpers are tests/test_browser.py's: the real server in a subprocess, a worker
speaking the protocol over HTTP, and waits that are Playwright expectations, never sleeps.
"""

import pytest
import requests

from tests.conftest import WORKER_TOKEN
from tests.helpers import ServerProcess
from tests.test_browser import (  # noqa: F401 (browser is a fixture)
    HTTP_TIMEOUT_SECONDS,
    WAIT_MS,
    api_submit,
    browser,
    phone,
    phone_page,
    submit_from_page,
    wake,
)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser


def worker_asks_for(url: str, models: list[str]) -> None:
    """A worker's claim that finds nothing: the server sees it ask for `models`."""
    response = requests.post(
        f"{url}/api/v1/worker/claim", json={"worker": "demo", "models": models},
        headers={"Authorization": f"Bearer {WORKER_TOKEN}"}, timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert response.status_code == 204, response.text


def test_a_job_for_a_model_no_worker_asks_for_says_so(phone, live_server):  # noqa: F811
    phone.goto("/")
    model_input = phone.get_by_label("Model")
    hint = phone.locator("#no-worker-hint")
    phone.get_by_text("Advanced").tap()
    model_input.fill("mega")
    expect(hint).to_have_text(
        "No worker has asked this server for jobs yet, so model 'mega' has none."
    )
    worker_asks_for(live_server.url, ["mini"])
    api_submit(live_server.url, prompt="a mini job ahead", model="mini")
    phone.goto("/")
    phone.get_by_text("Advanced").tap()
    expect(hint).to_be_hidden()  # mini is served
    model_input.fill("mega")
    expect(hint).to_have_text("No worker has asked for model 'mega' in the last 10 minutes.")

    phone.get_by_label("Prompt").fill("a huge fox")
    phone.get_by_role("button", name="Queue it").click()
    phone.wait_for_url("**/#job-*")
    mega_id = phone.url.rsplit("#job-", 1)[1]
    warning = "No worker has asked for model 'mega' in the last 10 minutes."
    expect(phone.locator('.flash[data-kind="no-worker"]')).to_have_text(warning)
    row = phone.locator(f"#active-list #job-{mega_id}")
    expect(row.locator(".no-worker")).to_have_text(warning)
    expect(row.locator(".position")).to_have_text("#1 in line")  # the mini job is not ahead
    mini_row = phone.locator("#active-list .job-row", has_text="a mini job ahead")
    expect(mini_row.locator(".no-worker")).to_be_hidden()

    # A row the page adds from the API (queued elsewhere) gets the same warning.
    other = api_submit(live_server.url, prompt="another huge fox", model="mega")
    wake(phone)
    other_row = phone.locator(f"#active-list #job-{other['id']}")
    expect(other_row.locator(".no-worker")).to_have_text(warning)
    expect(other_row.locator(".position")).to_have_text("#2 in line")


def test_a_page_whose_session_ended_elsewhere_says_so_and_keeps_the_draft(browser, tmp_path):  # noqa: F811
    server = ServerProcess(
        tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN, "DALLEQ_PASSWORD": "pw"}
    ).start()
    context, page = phone_page(browser, server.url)
    try:
        page.goto("/")
        page.get_by_label("Password").fill("pw")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{server.url}/")
        other = context.new_page()
        other.goto("/")
        page.get_by_label("Prompt").fill("an idea I typed on the bus")
        page.get_by_role("radio", name="1×1").check()
        page.get_by_label("Seed").fill("77")

        other.get_by_role("button", name="Log out").click()
        other.wait_for_url("**/login")
        wake(page)  # its next poll meets the ended session
        banner = page.get_by_role("alert")
        expect(banner).to_have_text("Your session ended; log in again.")
        page.get_by_role("link", name="log in again").click()
        page.wait_for_url("**/login?next=%2F")  # back to this page after
        page.get_by_label("Password").fill("pw")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{server.url}/")
        expect(page.get_by_label("Prompt")).to_have_value("an idea I typed on the bus")
        expect(page.get_by_role("radio", name="1×1")).to_be_checked()
        expect(page.get_by_label("Seed")).to_have_value("77")
        expect(page.locator("#session-ended")).to_have_count(0)
    finally:
        context.close()
        server.stop()


@pytest.fixture
def notice_server(settings):
    """The real server (waitress) on a thread of this process, with the demo notice set as
    `dalleq up` sets it."""
    from dalleq.up import DEMO_NOTICE
    from server.serving import BackgroundServer, make_server

    app, server = make_server(settings, host="127.0.0.1", port=0, threads=4)
    app.config["DALLEQ_NOTICE"] = DEMO_NOTICE
    background = BackgroundServer(server).start()
    yield f"http://127.0.0.1:{server.effective_port}"
    background.close()
    app.extensions["dalleq"].engine.dispose()


def test_the_notice_folds_to_a_line_and_stays_folded(browser, notice_server):  # noqa: F811
    context, page = phone_page(browser, notice_server)
    try:
        page.goto("/")
        notice = page.locator("#notice")
        expect(notice).to_contain_text("its images are noise")
        open_height = notice.bounding_box()["height"]
        page.locator("#notice summary").tap()
        expect(notice).not_to_have_attribute("open", "")
        folded_height = notice.bounding_box()["height"]
        assert folded_height < open_height
        assert folded_height <= 60  # a line and its padding, not a fifth of 844 px
        page.reload()
        expect(notice.locator("summary")).to_have_text("Demo model with random weights")
        expect(notice).not_to_have_attribute("open", "")
        assert notice.bounding_box()["height"] == folded_height
        page.goto("/gallery")  # every page
        expect(notice).not_to_have_attribute("open", "")
    finally:
        context.close()
