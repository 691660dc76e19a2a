"""The rough edges a newcomer hit on the forms (issue 18), in Chromium at a phone's size.

An Advanced field's error opens Advanced and marks that field; the prompt box counts and says
when a paste was cut; the queue row's ✕ can be undone; "Edit and rerun" offers the grid and the
sampling knobs; in landscape the sticky "Queue it" bar leaves the prompt box alone. The undo
window runs on Playwright's fake clock, so nothing here waits out real seconds.
"""

import re

import pytest

from tests import test_browser
from tests.test_browser import PHONE, api_job, api_submit

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser

browser = test_browser.browser  # the fixtures of the phone pages' tests, shared
phone = test_browser.phone

LANDSCAPE = PHONE | {"viewport": {"width": 844, "height": 390}}
LANDSCAPE_WITH_KEYBOARD_PX = 200


def expect_marked(page, name: str, message: str) -> None:
    """`name` is the one field marked invalid, focused, with `message` right after it."""
    field = page.locator(f"form [name={name}]").first
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    expect(page.locator("form [aria-invalid=true]")).to_have_count(1)
    note = field.evaluate("input => (input.closest('label, fieldset') || input).nextElementSibling")
    assert note is not None
    after = page.locator(f"form :is(label, fieldset):has([name={name}]) + .form-error")
    expect(after.first).to_contain_text(message)
    assert after.first.get_attribute("id") in field.get_attribute("aria-describedby").split()


def test_an_advanced_fields_error_opens_advanced_and_marks_that_field(phone):
    phone.goto("/")
    phone.get_by_label("Prompt").fill("a fox too hot to draw")
    phone.locator("details.advanced summary").tap()
    phone.get_by_label("Temperature").fill("99")
    phone.locator("details.advanced summary").tap()  # folded again, as a newcomer leaves it
    phone.get_by_role("button", name="Queue it").click()
    expect(phone.locator("details.advanced")).to_have_attribute("open", "")
    expect_marked(phone, "temperature", "temperature must be > 0 and <= ")
    expect(phone.get_by_label("Prompt")).not_to_have_attribute("aria-invalid", "true")
    expect(phone.get_by_label("Prompt")).to_have_value("a fox too hot to draw")


def test_an_api_error_shown_by_script_marks_the_field_it_names(phone, live_server):
    """The path for a form sent through the API: DQForm.showError with the JSON error body."""
    phone.goto("/")
    error = phone.evaluate(
        """async () => {
             const response = await fetch('/api/v1/jobs', {method: 'POST',
               headers: {'Content-Type': 'application/json', 'X-CSRF-Token':
                 document.querySelector('meta[name=csrf-token]').content},
               body: JSON.stringify({prompt: 'a fox', top_k: 0})});
             const body = await response.json();
             DQForm.showError(document.querySelector('form.submit-form'), body.error);
             return body.error;
           }"""
    )
    assert error["code"] == "invalid_top_k"
    expect(phone.locator("details.advanced")).to_have_attribute("open", "")
    expect_marked(phone, "top_k", "top_k must be between 1 and")


def test_the_prompt_box_counts_and_says_when_a_paste_was_cut(phone, live_server):
    phone.context.grant_permissions(["clipboard-read", "clipboard-write"])
    phone.goto("/")
    box = phone.get_by_label("Prompt")
    counter = phone.locator("#prompt-count")
    expect(counter).to_have_text("0 / 500")
    box.fill("a red fox")
    expect(counter).to_have_text("9 / 500")
    expect(phone.locator("#prompt-long")).to_be_hidden()

    box.fill("")
    phone.evaluate("text => navigator.clipboard.writeText(text)", "a fox in the snow " * 300)
    box.focus()
    box.press("ControlOrMeta+V")
    expect(counter).to_have_text("500 / 500")
    expect(phone.locator("#prompt-cut")).to_be_visible()
    expect(phone.locator("#prompt-cut")).to_contain_text("5400 characters: only the first 500")
    expect(phone.locator("#prompt-long")).to_be_visible()
    expect(phone.locator("#prompt-long")).to_contain_text("64 tokens")

    phone.get_by_role("button", name="Queue it").click()
    phone.wait_for_url("**/#job-*")
    job = api_job(live_server.url, phone.url.rsplit("#job-", 1)[1])
    assert len(job["prompt"]) <= 500


def test_a_rows_cancel_can_be_undone_and_otherwise_goes_through(phone, live_server):
    job_id = api_submit(live_server.url, prompt="a fox I almost canceled", grid=1)["id"]
    cancels = []
    phone.on("request", lambda request: cancels.append(request.url)
             if request.url.endswith("/cancel") else None)
    phone.clock.install()
    phone.goto("/")
    row = phone.locator(f"#active-list #job-{job_id}")

    row.get_by_role("button", name="Cancel").tap()
    expect(row).to_contain_text("Canceling…")
    row.get_by_role("button", name="Undo").tap()
    expect(row.get_by_role("button", name="Cancel")).to_be_visible()
    phone.clock.run_for(3 * 5000)  # well past the undo window
    assert cancels == []
    assert api_job(live_server.url, job_id)["status"] == "queued"
    expect(row.locator(".status")).to_have_text("Queued")

    row.get_by_role("button", name="Cancel").tap()
    expect(row.get_by_role("button", name="Undo")).to_be_visible()
    assert cancels == []
    with phone.expect_response(f"**/api/v1/jobs/{job_id}/cancel") as response_info:
        phone.clock.run_for(6000)
    assert response_info.value.status == 200
    assert api_job(live_server.url, job_id)["status"] == "canceled"


def test_leaving_the_page_in_the_undo_window_sends_the_cancel(phone, live_server):
    job_id = api_submit(live_server.url, prompt="a fox canceled on the way out", grid=1)["id"]
    phone.clock.install()
    phone.goto("/")
    row = phone.locator(f"#active-list #job-{job_id}")
    row.get_by_role("button", name="Cancel").tap()
    expect(row.get_by_role("button", name="Undo")).to_be_visible()
    phone.goto("/gallery")  # pagehide: the cancel leaves at once, with fetch keepalive
    # Playwright does not report a request that outlives its page: the job page shows what
    # arrived, polling again (on a real clock now) until the cancel lands.
    phone.clock.resume()
    phone.goto(f"/jobs/{job_id}")
    expect(phone.locator("#job-status .status")).to_have_text("Canceled")
    assert api_job(live_server.url, job_id)["status"] == "canceled"


def test_edit_and_rerun_offers_the_grid_and_sampling_knobs(phone, live_server):
    parent = api_submit(live_server.url, prompt="a fox", grid=2, temperature=1.5, top_k=64)
    phone.goto(f"/jobs/{parent['id']}")
    phone.get_by_text("Edit prompt and settings").tap()
    edit = phone.locator("form.edit-form")
    expect(edit.get_by_label("Temperature")).to_have_value("1.5")
    expect(edit.get_by_label("Top-k")).to_have_value("64")
    expect(edit.get_by_role("radio", name="2×2")).to_be_checked()

    edit.get_by_label("Temperature").fill("99")
    edit.get_by_role("button", name="Run the edited job").tap()
    expect(phone.locator("details.edit")).to_have_attribute("open", "")
    expect_marked(phone, "temperature", "temperature must be > 0 and <= ")

    edit.get_by_role("radio", name="3×3").check()
    edit.get_by_label("Temperature").fill("2.5")
    edit.get_by_role("button", name="Run the edited job").tap()
    phone.wait_for_url(re.compile(rf"/jobs/(?!{parent['id']}$)[\w-]+$"))
    job = api_job(live_server.url, phone.url.rsplit("/", 1)[1])
    assert job["parent_id"] == parent["id"]
    assert job["grid"] == 3
    assert job["params"]["temperature"] == 2.5 and job["params"]["top_k"] == 64


def overlaps(a: dict, b: dict) -> bool:
    return (a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]
            and a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"])


def test_in_landscape_the_queue_button_leaves_the_prompt_box_alone(browser, live_server):
    for number in range(8):  # a long queue under the form, so the page scrolls
        api_submit(live_server.url, prompt=f"a fox on its side {number}", grid=1)
    context = browser.new_context(base_url=live_server.url, **LANDSCAPE)
    page = context.new_page()
    try:
        page.goto("/")
        box = page.get_by_label("Prompt")
        box.focus()
        # 390 px tall, then what an Android phone on its side keeps with its keyboard open.
        for height in (LANDSCAPE["viewport"]["height"], LANDSCAPE_WITH_KEYBOARD_PX):
            page.set_viewport_size({"width": LANDSCAPE["viewport"]["width"], "height": height})
            box.scroll_into_view_if_needed()
            bar = page.locator(".form-actions").bounding_box()
            text = box.bounding_box()
            assert not overlaps(bar, text), (height, bar, text)
    finally:
        context.close()
