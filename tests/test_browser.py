"""The phone pages in a real Chromium at a phone's size, against the real server in a subprocess.

A test worker speaks the worker protocol over HTTP (claim, heartbeat, result with real PNGs), so
what the page shows live (queued, running at 50%, the finished grid) comes from the same code
paths a GPU worker drives. Nothing here sleeps: every wait is a Playwright expectation with a
deadline, comfortably above the pages' 2-second polling interval.
"""

import io
import json
import shutil
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.conftest import WORKER_TOKEN
from tests.helpers import ServerProcess, result_files

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]
PHONE = dict(
    viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
)
WAIT_MS = 10_000  # several polling rounds (static/app.js polls every 2 s)
HTTP_TIMEOUT_SECONDS = 10

if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def phone_page(browser, base_url, **options):
    context = browser.new_context(base_url=base_url, **PHONE, **options)
    context.set_default_timeout(WAIT_MS)
    return context, context.new_page()


@pytest.fixture
def phone(browser, live_server):
    """A phone-sized page on the live server that may show notifications."""
    context, page = phone_page(browser, live_server.url)
    context.grant_permissions(["notifications"])
    expect.set_options(timeout=WAIT_MS)
    yield page
    context.close()


class HttpWorker:
    """A GPU worker's side of shared/API.md over real HTTP."""

    def __init__(self, url: str):
        self.url = url
        self.headers = {"Authorization": f"Bearer {WORKER_TOKEN}"}

    def post(self, path, **kwargs):
        return requests.post(
            self.url + path, headers=self.headers, timeout=HTTP_TIMEOUT_SECONDS, **kwargs
        )

    def claim(self) -> tuple[dict, str]:
        body = {"worker": "browser-test", "models": ["mini"]}
        response = self.post("/api/v1/worker/claim", json=body)
        assert response.status_code == 200, response.text
        (claimed,) = response.json()["jobs"]
        return claimed["job"], claimed["lease"]

    def heartbeat(self, job_id: str, lease: str, progress: float) -> None:
        response = self.post(
            f"/api/v1/worker/jobs/{job_id}/heartbeat", json={"lease": lease, "progress": progress}
        )
        assert response.status_code == 200, response.text

    def preview(self, job_id: str, lease: str, steps: int, color, grid: int) -> None:
        """Post a solid-colour WebP as the job's live preview (shared/API-1.1.md)."""
        buffer = io.BytesIO()
        Image.new("RGB", (128 * grid, 128 * grid), color).save(buffer, format="WEBP")
        response = self.post(
            f"/api/v1/worker/jobs/{job_id}/preview", data={"lease": lease, "steps": str(steps)},
            files={"image": ("preview.webp", buffer.getvalue(), "image/webp")},
        )
        assert response.status_code == 200, response.text

    def finish(self, job_id: str, lease: str, grid: int, meta: dict | None = None) -> dict:
        data = {"lease": lease} if meta is None else {"lease": lease, "meta": json.dumps(meta)}
        response = self.post(
            f"/api/v1/worker/jobs/{job_id}/result", data=data, files=result_files(grid)
        )
        assert response.status_code == 200, response.text
        return response.json()


def api_submit(url: str, **body) -> dict:
    """Queue a job the way a script would (no cookie, so no CSRF token needed)."""
    response = requests.post(f"{url}/api/v1/jobs", json=body, timeout=HTTP_TIMEOUT_SECONDS)
    assert response.status_code == 201, response.text
    return response.json()


def api_job(url: str, job_id: str) -> dict:
    return requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT_SECONDS).json()


def submit_from_page(page, prompt: str, grid: int, *, goto: bool = True) -> str:
    """Type a prompt on the queue page (opened first unless goto is False) and send it; returns
    the new job's id."""
    if goto:
        page.goto("/")
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("radio", name=f"{grid}×{grid}").check()
    page.get_by_role("button", name="Queue it").click()
    page.wait_for_url("**/#job-*")
    return page.url.rsplit("#job-", 1)[1]


def wake(page) -> None:
    """Tell the page the network is back, as a phone waking up does: it polls at once."""
    page.evaluate("window.dispatchEvent(new Event('online'))")


def mark_page(page) -> None:
    """Leave a mark in the page's JS state: if the page reloads, the mark is gone."""
    page.evaluate("window.stillTheSamePage = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.stillTheSamePage") is True


def test_submit_watch_progress_see_grid_open_tile_and_rerun(phone, live_server):
    worker = HttpWorker(live_server.url)
    job_id = submit_from_page(phone, "a red fox in the snow", grid=2)
    row = phone.locator(f"#active-list #job-{job_id}")
    expect(row).to_contain_text("a red fox in the snow")
    expect(row.locator(".status")).to_have_text("Queued")
    expect(row.locator(".position")).to_have_text("#1 in line")

    row.locator("a.job-link").tap()
    phone.wait_for_url(f"**/jobs/{job_id}")
    mark_page(phone)
    status = phone.locator("#job-status .status")
    expect(status).to_have_text("Queued")

    # The page polls every 2 s by itself (test_live_queue_... waits for that); here each step
    # wakes it at once, which is also what happens when a phone comes back online.
    job, lease = worker.claim()
    assert job["id"] == job_id
    wake(phone)
    expect(status).to_have_text("Running")
    worker.heartbeat(job_id, lease, 0.5)
    wake(phone)
    expect(phone.locator("#job-status .percent")).to_have_text("50%")
    expect(phone.locator("#job-status progress")).to_have_js_property("value", 0.5)

    worker.finish(job_id, lease, grid=2)
    wake(phone)
    tiles = phone.locator("#job-result a.tile")
    expect(tiles).to_have_count(4)
    expect(status).to_have_text("Done")
    expect(phone).to_have_title("✓ done · a red fox in the snow")
    expect(phone.locator("#job-status form")).to_have_count(0)  # no cancel once done
    assert_not_reloaded(phone)
    tile_image = tiles.nth(1).locator("img")
    expect(tile_image).to_have_js_property("complete", True)
    assert tile_image.evaluate("image => image.naturalWidth") == 256

    tiles.nth(1).tap()
    lightbox = phone.locator("#lightbox")
    expect(lightbox).to_be_visible()
    expect(lightbox.locator("img")).to_have_attribute("src", f"/files/{job_id}/tile_1.png")
    expect(phone.locator("#lightbox-count")).to_have_text("2 / 4")
    expect(lightbox.locator("img")).to_have_js_property("naturalWidth", 256)
    lightbox.get_by_role("button", name="Next").tap()
    expect(lightbox.locator("img")).to_have_attribute("src", f"/files/{job_id}/tile_2.png")
    lightbox.get_by_role("button", name="Close").tap()
    expect(lightbox).to_be_hidden()

    phone.get_by_role("button", name="Rerun with new seeds").tap()
    phone.wait_for_url(lambda url: "/jobs/" in url and not url.endswith(job_id))
    new_id = phone.url.rsplit("/", 1)[1]
    expect(phone.locator("a.parent-link")).to_have_attribute("href", f"/jobs/{job_id}")
    expect(phone.locator("#job-status .status")).to_have_text("Queued")
    rerun = api_job(live_server.url, new_id)
    assert rerun["parent_id"] == job_id and rerun["prompt"] == "a red fox in the snow"


def test_live_queue_follows_a_job_to_the_finished_list(phone, live_server):
    worker = HttpWorker(live_server.url)
    job_id = submit_from_page(phone, "a lighthouse at night", grid=1)
    mark_page(phone)
    row = phone.locator(f"#active-list #job-{job_id}")
    expect(row.locator(".status")).to_have_text("Queued")

    job, lease = worker.claim()
    expect(row.locator(".status")).to_have_text("Running")  # found by the page's own timer
    expect(phone.locator("[data-counts]")).to_have_text("1 running · 0 queued")
    worker.heartbeat(job_id, lease, 0.5)
    wake(phone)
    expect(row.locator(".percent")).to_have_text("50%")
    worker.heartbeat(job_id, lease, 0.75)
    wake(phone)
    expect(row.locator(".percent")).to_have_text("75%")

    worker.finish(job_id, lease, grid=1)
    wake(phone)
    finished = phone.locator(f"#recent-list #job-{job_id}")
    expect(finished.locator(".status")).to_have_text("Done")
    thumb = finished.locator("img.job-thumb")
    expect(thumb).to_have_attribute("src", f"/files/{job_id}/thumb.webp")
    expect(row).to_have_count(0)
    expect(phone.locator("[data-empty]")).to_be_visible()
    expect(phone).to_have_title("✓ done · a lighthouse at night")
    assert_not_reloaded(phone)


def test_cancel_from_the_queue_uses_the_api_with_the_csrf_header(phone, live_server):
    job_id = submit_from_page(phone, "a cat made of clouds", grid=1)
    mark_page(phone)
    with phone.expect_response(f"**/api/v1/jobs/{job_id}/cancel") as response_info:
        phone.locator(f"#active-list #job-{job_id}").get_by_role("button", name="Cancel").tap()
    response = response_info.value
    assert response.status == 200
    assert response.request.headers.get("x-csrf-token")
    expect(phone.locator(f"#recent-list #job-{job_id} .status")).to_have_text("Canceled")
    assert api_job(live_server.url, job_id)["status"] == "canceled"
    assert_not_reloaded(phone)


def test_a_typed_prompt_survives_a_refused_form(phone, live_server):
    phone.goto("/")
    phone.get_by_label("Prompt").fill("a long prompt I do not want to type again")
    # The session is gone (cookie cleared, server restarted...): the form's token is refused.
    phone.context.clear_cookies()
    phone.get_by_role("button", name="Queue it").click()
    expect(phone.locator(".error-status")).to_have_text("403")
    phone.get_by_role("link", name="Back to the queue").click()
    expect(phone.get_by_label("Prompt")).to_have_value("a long prompt I do not want to type again")


def test_gallery_scrolls_into_the_next_pages(phone, live_server):
    worker = HttpWorker(live_server.url)
    job_count = 30  # more than one page of 24
    for number in range(job_count):
        api_submit(live_server.url, prompt=f"lighthouse {number}", grid=1)
        job, lease = worker.claim()
        worker.finish(job["id"], lease, grid=1)
    phone.goto("/gallery")
    mark_page(phone)
    cards = phone.locator("#gallery .thumb-card")
    expect(cards).to_have_count(24)
    phone.locator("#more").scroll_into_view_if_needed()
    expect(cards).to_have_count(job_count)
    expect(phone.locator("#more")).to_have_count(0)
    expect(cards.last).to_contain_text("lighthouse 0")
    assert_not_reloaded(phone)

    phone.get_by_role("searchbox").fill("lighthouse 7")
    phone.get_by_role("searchbox").press("Enter")
    phone.wait_for_url("**/gallery?q=lighthouse+7")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("lighthouse 7")


def test_password_mode_login_then_submit(browser, tmp_path):
    # This context is not granted notifications, so the submit also goes through the permission
    # request (headless Chromium answers it by itself) before the form is sent.
    server = ServerProcess(
        tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN, "DALLEQ_PASSWORD": "pw"}
    ).start()
    context, page = phone_page(browser, server.url)
    try:
        page.goto("/gallery")
        page.wait_for_url("**/login?next=/gallery")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong password.")
        page.get_by_label("Password").fill("pw")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{server.url}/gallery")

        job_id = submit_from_page(page, "a locked-up fox", grid=1)
        row = page.locator(f"#active-list #job-{job_id}")
        expect(row.locator(".status")).to_have_text("Queued")
        HttpWorker(server.url).claim()
        wake(page)
        expect(row.locator(".status")).to_have_text("Running")  # the API answers the session
    finally:
        context.close()
        server.stop()


def test_a_ranked_job_shows_its_best_tile_first_and_large_with_scores_on_tap(phone, live_server):
    """Ranking is a view: the best-scored tile comes first and spans the row, the rest follow
    best first, and tapping a tile shows its score; the files keep their index."""
    violations = []
    phone.on("console", lambda message: violations.append(message.text)
             if "Content Security Policy" in message.text else None)
    worker = HttpWorker(live_server.url)
    job_id = api_submit(live_server.url, prompt="a lighthouse, ranked", grid=3)["id"]
    _job, lease = worker.claim()
    phone.goto(f"/jobs/{job_id}")
    expect(phone.locator("#job-status .status")).to_have_text("Running")
    scores = [20.0, 21.5, 19.0, 25.0, 18.0, 31.25, 22.0, 17.0, 23.0]
    done = worker.finish(job_id, lease, grid=3, meta={"scores": scores})
    assert done["best_image"] == 5 and done["scores"] == scores
    wake(phone)

    tiles = phone.locator("#job-result a.tile")
    expect(tiles).to_have_count(9)
    order = [int(index) for index in tiles.evaluate_all("ts => ts.map(t => t.dataset.index)")]
    assert order == [5, 3, 8, 6, 1, 0, 2, 4, 7]
    best = tiles.first
    expect(best).to_have_attribute("href", f"/files/{job_id}/tile_5.png")
    expect(best.locator(".tile-badge")).to_have_text("Best")
    best_box, other_box = best.bounding_box(), tiles.nth(1).bounding_box()
    assert best_box["width"] > 3 * other_box["width"]  # the whole row against a quarter of it
    assert best_box["y"] + best_box["height"] <= other_box["y"] + 1  # above the rest

    best.tap()
    caption = phone.locator("#lightbox-facts")
    expect(phone.locator("#lightbox img")).to_have_attribute(
        "src", f"/files/{job_id}/tile_5.png")
    expect(caption).to_contain_text("Best · score 31.25 · image 6 of 9 · seed")
    expect(phone.locator("#lightbox-count")).to_have_text("1 / 9")
    phone.locator("#lightbox").get_by_role("button", name="Next").tap()
    expect(caption).to_contain_text("score 25.00 · image 4 of 9 · seed")
    assert violations == []


def test_pages_run_under_the_content_security_policy(phone, live_server):
    """Every page's own scripts and styles work under the CSP: no violation is reported, the
    live scripts run, and the grid takes its side from CSS (no inline style attributes)."""
    violations = []
    phone.add_init_script(
        "document.addEventListener('securitypolicyviolation', (event) => "
        "(window.cspViolations = window.cspViolations || []).push(event.violatedDirective))"
    )
    phone.on("console", lambda message: violations.append(message.text)
             if "Content Security Policy" in message.text else None)
    worker = HttpWorker(live_server.url)
    job_id = submit_from_page(phone, "a fox under a strict policy", grid=2)
    _job, lease = worker.claim()
    worker.finish(job_id, lease, grid=2)
    for path in ["/", "/gallery", f"/jobs/{job_id}", "/login"]:
        phone.goto(path)
        phone.wait_for_load_state("load")
        violations += phone.evaluate("window.cspViolations || []")
    assert violations == []
    phone.goto(f"/jobs/{job_id}")
    columns = phone.locator("#job-result .tiles").evaluate(
        "tiles => getComputedStyle(tiles).gridTemplateColumns.split(' ').length")
    assert columns == 2
    phone.locator("#job-result a.tile").first.tap()
    expect(phone.locator("#lightbox")).to_be_visible()  # job.js ran


def test_the_same_rendered_form_sent_twice_queues_one_job(browser, live_server):
    """A resend on a flaky link, or going back and sending again, sends the same rendered form:
    the page the browser kept is offered again (route.fulfill with the HTML first served), and
    its second send must land on the first job instead of queuing another. The service worker is
    blocked: page.route never sees the requests it answers (the queue page, static files)."""
    context, phone = phone_page(browser, live_server.url, service_workers="block")
    context.grant_permissions(["notifications"])
    first_render = phone.goto("/").text()
    first_id = submit_from_page(phone, "a fox sent twice", grid=1, goto=False)
    phone.route(f"{live_server.url}/", lambda route: route.fulfill(
        body=first_render, content_type="text/html; charset=utf-8"))
    phone.goto("/")
    phone.unroute(f"{live_server.url}/")
    again_id = submit_from_page(phone, "a fox sent twice", grid=1, goto=False)
    assert again_id == first_id
    jobs = requests.get(f"{live_server.url}/api/v1/jobs", timeout=HTTP_TIMEOUT_SECONDS).json()
    assert [job["id"] for job in jobs["jobs"]] == [first_id]
    expect(phone.locator("#active-list li")).to_have_count(1)
    context.close()


def test_the_pages_api_calls_send_an_idempotency_key(phone, live_server):
    phone.goto("/")
    with phone.expect_request("**/api/v1/jobs") as request_info:
        first = phone.evaluate(
            """() => DQ.api('/api/v1/jobs', {method: 'POST', body: JSON.stringify(
                 {prompt: 'an owl by script'}), headers: {'Content-Type': 'application/json'}})"""
        )
    key = request_info.value.headers.get("idempotency-key")
    assert key and len(key) == 32
    retried = phone.evaluate(
        """(key) => DQ.api('/api/v1/jobs', {method: 'POST', body: JSON.stringify(
             {prompt: 'an owl by script'}), headers: {'Content-Type': 'application/json',
             'Idempotency-Key': key}})""",
        key,
    )
    assert retried["id"] == first["id"]


RED, BLUE = (220, 20, 20), (20, 20, 220)
# The colour at an image's centre, as the browser decoded it (drawn onto a 1x1 canvas).
CENTRE_COLOR_JS = """image => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const context = canvas.getContext("2d");
  context.drawImage(image, image.naturalWidth / 2, image.naturalHeight / 2, 1, 1, 0, 0, 1, 1);
  return [...context.getImageData(0, 0, 1, 1).data.slice(0, 3)];
}"""


def expect_preview(image, job_id: str, steps: int, color) -> None:
    """`image` shows the preview made at `steps`, loaded, in about `color` (WebP is lossy)."""
    expect(image).to_be_visible()
    expect(image).to_have_attribute("src", f"/files/{job_id}/preview?steps={steps}")
    expect(image).to_have_js_property("complete", True)
    shown = image.evaluate(CENTRE_COLOR_JS)
    assert all(abs(a - b) < 40 for a, b in zip(shown, color)), (shown, color)


def test_the_job_page_shows_each_new_preview_then_the_grid_without_a_reload(phone, live_server):
    worker = HttpWorker(live_server.url)
    job_id = api_submit(live_server.url, prompt="a fox forming", grid=2)["id"]
    _job, lease = worker.claim()
    phone.goto(f"/jobs/{job_id}")
    mark_page(phone)
    preview = phone.locator("#job-preview")
    expect(phone.locator("#job-status .status")).to_have_text("Running")
    expect(preview).to_be_hidden()
    expect(phone.locator("#job-result .tiles.waiting")).to_be_visible()

    worker.preview(job_id, lease, 32, RED, grid=2)
    wake(phone)
    expect_preview(preview, job_id, 32, RED)
    expect(phone.locator("#job-result .tiles.waiting")).to_be_hidden()  # the preview replaces it
    assert preview.evaluate("image => image.getBoundingClientRect().width") <= 390
    worker.preview(job_id, lease, 96, BLUE, grid=2)
    wake(phone)
    expect_preview(preview, job_id, 96, BLUE)

    worker.finish(job_id, lease, grid=2)
    wake(phone)
    expect(phone.locator("#job-result a.tile")).to_have_count(4)
    expect(preview).to_have_count(0)
    assert_not_reloaded(phone)


def test_the_live_queue_shows_each_new_preview_in_the_row(phone, live_server):
    worker = HttpWorker(live_server.url)
    job_id = submit_from_page(phone, "an owl forming", grid=1)
    mark_page(phone)
    row = phone.locator(f"#active-list #job-{job_id}")
    _job, lease = worker.claim()
    expect(row.locator(".status")).to_have_text("Running")
    expect(row.locator("img.job-preview")).to_be_hidden()

    worker.preview(job_id, lease, 64, RED, grid=1)
    wake(phone)
    expect_preview(row.locator("img.job-preview"), job_id, 64, RED)
    worker.preview(job_id, lease, 128, BLUE, grid=1)
    wake(phone)
    expect_preview(row.locator("img.job-preview"), job_id, 128, BLUE)

    worker.finish(job_id, lease, grid=1)
    wake(phone)
    finished = phone.locator(f"#recent-list #job-{job_id}")
    expect(finished.locator("img.job-thumb")).to_have_attribute(
        "src", f"/files/{job_id}/thumb.webp")
    expect(finished.locator("img.job-preview")).to_be_hidden()
    assert_not_reloaded(phone)


def test_a_newer_preview_waits_for_the_one_loading_instead_of_stacking_fetches(phone, live_server):
    """DQ.showLatest on a slow link: one fetch at a time; previews arriving meanwhile replace the
    pending one, so only the newest is fetched next. Loads are played by hand (a stand-in Image)."""
    phone.goto("/")
    steps = phone.evaluate("""() => {
      const fetches = [];
      window.Image = class { set src(url) { fetches.push(this); this.url = url; } };
      const img = document.createElement("img");
      img.hidden = true;
      const seen = () => ({ fetched: fetches.map((f) => f.url), shown: img.hidden ? null : img.src });
      const steps = [];
      DQ.showLatest(img, "/p?steps=1");
      DQ.showLatest(img, "/p?steps=2");
      DQ.showLatest(img, "/p?steps=3");
      steps.push(seen());
      fetches[0].onload();
      steps.push(seen());
      fetches[1].onload();
      steps.push(seen());
      return steps;
    }""")
    origin = live_server.url
    assert steps == [
        {"fetched": ["/p?steps=1"], "shown": None},
        {"fetched": ["/p?steps=1", "/p?steps=3"], "shown": f"{origin}/p?steps=1"},
        {"fetched": ["/p?steps=1", "/p?steps=3"], "shown": f"{origin}/p?steps=3"},
    ]
