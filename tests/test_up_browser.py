"""`dalleq up` driven from the phone page alone, in a real Chromium: the newcomer's first minutes.

`dalleq up` runs as a subprocess exactly as the README says (no model given, so it writes the
demo checkpoint and starts its own worker); the page is the only thing the test touches.
"""

import os
import re
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO
from tests.test_browser import WAIT_MS, browser, phone_page, submit_from_page  # noqa: F401

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("jax")
expect = sync_api.expect

pytestmark = pytest.mark.browser

JOB_WAIT_MS = 120_000  # the first job compiles the demo model

# A warm demo job runs in well under the page's poll interval, so whether the bar is seen between
# 0 and 100% is chance: test_browser drives the bar step by step, and test_worker_faults holds the
# real model mid-job to see its progress reach the server. Here the page must follow the job to
# its grid by itself: the mark set before the job ran survives only if nothing reloaded the page.


@pytest.fixture
def up_server(tmp_path, jax_cache_dir):
    log_path = tmp_path / "up.log"
    env = {"DALLEQ_MODELS": str(tmp_path / "models"), "DALLEQ_JAX_CACHE": str(jax_cache_dir),
           "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dalleq", "up", "--port", "0", "--db",
             str(tmp_path / "queue.db"), "--data", str(tmp_path / "data")],
            cwd=REPO, env={**os.environ, **env}, stdout=log,
            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (match := re.search(r"serving on (http://\S+)", log_path.read_text())):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield match.group(1).rstrip("/"), log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_up_runs_the_whole_loop_from_the_phone(browser, up_server):  # noqa: F811
    url, log_path = up_server
    context, phone = phone_page(browser, url)
    expect.set_options(timeout=WAIT_MS)
    try:
        phone.goto("/")
        expect(phone.locator(".notice")).to_contain_text("random weights")
        job_id = submit_from_page(phone, "a lighthouse on a cliff", grid=2)
        phone.goto(f"/jobs/{job_id}")
        phone.evaluate("window.sameDocument = true")
        expect(phone.locator("#job-status .status")).to_have_text("Done", timeout=JOB_WAIT_MS)
        expect(phone.locator("#job-status .percent")).to_have_text("100%")
        assert phone.evaluate("window.sameDocument === true")
        tiles = phone.locator("#job-result a.tile")
        expect(tiles).to_have_count(4)
        expect(tiles.nth(0).locator("img")).to_have_js_property("naturalWidth", 256)

        expect(tiles.nth(0)).to_have_class("tile best")  # the demo model ranks with its CLIP
        index = tiles.nth(2).get_attribute("data-index")
        tiles.nth(2).tap()
        lightbox = phone.locator("#lightbox")
        expect(lightbox).to_be_visible()
        expect(lightbox.locator("img")).to_have_attribute("src",
                                                          f"/files/{job_id}/tile_{index}.png")
        lightbox.get_by_role("button", name="Close").tap()

        phone.get_by_role("button", name="Rerun with new seeds").tap()
        phone.wait_for_url(lambda page_url: "/jobs/" in page_url and not page_url.endswith(job_id))
        rerun_id = phone.url.rsplit("/", 1)[1]
        expect(phone.locator("#job-status .status")).to_have_text("Done", timeout=JOB_WAIT_MS)
        expect(phone.locator("#job-result a.tile")).to_have_count(4)

        phone.goto("/gallery")
        phone.get_by_role("searchbox").fill("lighthouse")
        phone.get_by_role("searchbox").press("Enter")
        cards = phone.locator(f"#gallery a[href$='/jobs/{job_id}'], #gallery a[href$='/jobs/{rerun_id}']")
        expect(cards).to_have_count(2)
    finally:
        context.close()
    assert "claimed by local" in log_path.read_text()
