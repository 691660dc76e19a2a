"""Ideas typed while the server cannot be reached (issue 18), in a real Chromium at phone size.

`context.set_offline(True)` cuts the page off, and (as these tests found in this Chromium) the
service worker too: its Background Sync fires only once the context is online again. So on the
way back both the page (its "online" handler) and the worker's sync may send the same stored
idea; each carries its Idempotency-Key, and the server's job list must show every idea once.
Requests are recorded with who sent them (request.service_worker), so each test says which path
did the work instead of assuming one.
"""
# ruff: noqa: F811  (pytest fixtures imported from tests/test_browser.py)

import pytest
import requests

from tests.test_browser import (  # noqa: F401
    HTTP_TIMEOUT_SECONDS,
    WAIT_MS,
    HttpWorker,
    browser,
    expect,
    phone,
    phone_page,
)

pytestmark = pytest.mark.browser

READY_JS = "navigator.serviceWorker.ready.then((registration) => Boolean(registration.active))"
STORED_IDEAS_JS = "DQIdeas.all()"
RETRY_WAIT_MS = 40_000  # the page's retries back off to 30 s while the server is unreachable


def server_jobs(url: str) -> list[dict]:
    response = requests.get(f"{url}/api/v1/jobs?limit=100", timeout=HTTP_TIMEOUT_SECONDS)
    assert response.status_code == 200
    return response.json()["jobs"]


def record_submits(context) -> list[dict]:
    """Every POST /api/v1/jobs the page or its service worker sends, with its key and sender."""
    sent = []

    def note(request):
        if request.method == "POST" and request.url.endswith("/api/v1/jobs"):
            sender = "service worker" if request.service_worker else "page"
            sent.append({"key": request.headers.get("idempotency-key"), "sender": sender})

    context.on("request", note)
    return sent


def open_with_service_worker(page) -> None:
    page.goto("/")
    assert page.evaluate(READY_JS) is True


def submit_offline(page, prompt: str) -> None:
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Queue it").tap()
    expect(page.locator("#waiting-list li", has_text=prompt)).to_contain_text("Waiting to send")


def test_two_ideas_typed_offline_wait_on_the_phone_then_arrive_once(phone, live_server):
    sent = record_submits(phone.context)
    open_with_service_worker(phone)
    phone.context.set_offline(True)
    submit_offline(phone, "a heron in the rain")
    submit_offline(phone, "a tram in the fog")
    waiting = phone.locator("#waiting-list li")
    expect(waiting).to_have_count(2)
    expect(phone.get_by_label("Prompt")).to_have_value("")  # kept on the phone, not in the box
    keys = {idea["key"] for idea in phone.evaluate(STORED_IDEAS_JS)}
    assert len(keys) == 2
    assert server_jobs(live_server.url) == []

    phone.context.set_offline(False)
    expect(waiting).to_have_count(0)
    expect(phone.locator("#active-list li")).to_have_count(2)  # the live queue shows them
    prompts = sorted(job["prompt"] for job in server_jobs(live_server.url))
    assert prompts == ["a heron in the rain", "a tram in the fog"]
    assert {send["key"] for send in sent} == keys  # only the stored keys were ever sent
    senders = {send["sender"] for send in sent}
    assert senders <= {"page", "service worker"} and senders, sent


def test_a_resent_idea_lands_on_its_first_job(phone, live_server):
    """Reload while waiting (the app opens from its shell offline), then a resend of an idea
    already sent (its answer lost): one job, the same one."""
    open_with_service_worker(phone)
    phone.context.set_offline(True)
    submit_offline(phone, "a fox in a tunnel")
    (idea,) = phone.evaluate(STORED_IDEAS_JS)

    phone.reload()  # offline: the service worker answers with the shell
    expect(phone.get_by_role("button", name="Queue it")).to_be_visible()
    expect(phone.locator("#waiting-list li")).to_have_text(
        ["a fox in a tunnelWaiting to sendDiscard"])

    # A document loaded while offline reports navigator.onLine as true in this Chromium, so it
    # gets no "online" event: the page's retry timer (or the worker's sync) sends it.
    phone.context.set_offline(False)
    expect(phone.locator("#waiting-list li")).to_have_count(0, timeout=RETRY_WAIT_MS)
    (job,) = server_jobs(live_server.url)

    phone.evaluate("(idea) => DQIdeas.save(idea)", idea)  # as if the first answer was lost
    with phone.expect_response("**/api/v1/jobs") as answer:
        phone.evaluate("window.dispatchEvent(new Event('online'))")
    assert answer.value.status == 200 and answer.value.json()["id"] == job["id"]
    expect(phone.locator("#waiting-list li")).to_have_count(0)
    assert [again["id"] for again in server_jobs(live_server.url)] == [job["id"]]


def test_a_waiting_idea_can_be_discarded(phone, live_server):
    open_with_service_worker(phone)
    phone.context.set_offline(True)
    submit_offline(phone, "a typo I regret")
    phone.get_by_role("button", name="Discard “a typo I regret”").tap()
    expect(phone.locator("#waiting-list li")).to_have_count(0)
    phone.context.set_offline(False)
    phone.reload()
    expect(phone.locator("#waiting-list li")).to_have_count(0)
    assert server_jobs(live_server.url) == []


def test_an_idea_refused_for_its_values_waits_with_the_reason(phone, live_server):
    """Typed offline, refused when sent (a 4xx): it stays, marked, until discarded."""
    open_with_service_worker(phone)
    phone.context.set_offline(True)
    phone.locator("details.advanced summary").tap()
    phone.get_by_label("Temperature").fill("99")
    submit_offline(phone, "too hot")
    phone.context.set_offline(False)
    row = phone.locator("#waiting-list li", has_text="too hot")
    expect(row).to_contain_text("Not sent: temperature")
    assert server_jobs(live_server.url) == []


def test_the_form_still_works_without_javascript(browser, live_server):
    context, page = phone_page(browser, live_server.url, java_script_enabled=False)
    try:
        page.goto("/")
        page.get_by_label("Prompt").fill("a fox without scripts")
        page.get_by_role("button", name="Queue it").click()
        page.wait_for_url("**/#job-*")
        assert [job["prompt"] for job in server_jobs(live_server.url)] == ["a fox without scripts"]
    finally:
        context.close()


def test_the_service_worker_keeps_only_the_shell_never_images_or_api_answers(phone, live_server):
    worker = HttpWorker(live_server.url)
    job_id = requests.post(f"{live_server.url}/api/v1/jobs", json={"prompt": "a kept fox",
                           "grid": 1}, timeout=HTTP_TIMEOUT_SECONDS).json()["id"]
    _job, lease = worker.claim()
    worker.finish(job_id, lease, grid=1)
    open_with_service_worker(phone)
    phone.reload()  # now controlled: every request below passes the worker
    for path in ["/", "/gallery", f"/jobs/{job_id}", "/"]:
        phone.goto(path)
        phone.wait_for_load_state("load")
    phone.goto(f"/jobs/{job_id}")
    expect(phone.locator("#job-result a.tile img").first).to_have_js_property("complete", True)
    cached = phone.evaluate("""async () => {
      const urls = [];
      for (const name of await caches.keys()) {
        for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
      }
      return urls.map((url) => new URL(url).pathname);
    }""")
    assert "/" in cached and "/static/offline.js" in cached
    assert all(path == "/" or path.startswith("/static/") for path in cached), cached
