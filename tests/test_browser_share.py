"""Sharing into the queue (issue 18): a link fills the form at phone size and never queues."""
# ruff: noqa: F811  (pytest fixtures imported from tests/test_browser.py)

from urllib.parse import quote

import pytest
import requests

from tests.conftest import WORKER_TOKEN
from tests.helpers import ServerProcess
from tests.test_browser import (  # noqa: F401
    HTTP_TIMEOUT_SECONDS,
    browser,
    expect,
    phone,
    phone_page,
)

pytestmark = pytest.mark.browser


def test_a_prompt_link_fills_the_form_without_queuing(phone, live_server):
    phone.goto("/?prompt=" + quote("a heron on one leg"))
    expect(phone.get_by_label("Prompt")).to_have_value("a heron on one leg")
    jobs = requests.get(f"{live_server.url}/api/v1/jobs", timeout=HTTP_TIMEOUT_SECONDS).json()
    assert jobs["jobs"] == []


def test_the_share_sheets_text_and_title_fill_the_form(phone, live_server):
    phone.goto("/?title=Notes&text=" + quote("a lighthouse made of glass") + "&url=")
    expect(phone.get_by_label("Prompt")).to_have_value("a lighthouse made of glass")
    phone.goto("/?title=" + quote("a cat in a hat") + "&url=" + quote("https://x.example/a"))
    expect(phone.get_by_label("Prompt")).to_have_value("a cat in a hat")


def test_a_long_shared_text_is_cut_with_a_visible_note(phone, live_server):
    phone.goto("/?text=" + "b" * 700)
    expect(phone.get_by_label("Prompt")).to_have_value("b" * 500)
    expect(phone.get_by_role("status").filter(has_text="keeps the first 500")).to_be_visible()


def test_a_shared_prompt_survives_the_login(browser, tmp_path):
    server = ServerProcess(
        tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN, "DALLEQ_PASSWORD": "pw"}
    ).start()
    context, page = phone_page(browser, server.url)
    try:
        page.goto("/?text=" + quote("an owl & a pussycat") + "&title=Poem")
        page.wait_for_url("**/login?next=**")
        page.get_by_label("Password").fill("pw")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_label("Prompt")).to_have_value("an owl & a pussycat")
    finally:
        context.close()
        server.stop()
