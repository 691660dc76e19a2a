"""Stars, families, compare, keeping a tile and the image viewer, in Chromium at 390x844 (issue 18).

The fixtures and the HTTP worker are tests/test_browser.py's. Headless Chromium has no share
sheet, so the Web Share API is stubbed in the page before its scripts run (add_init_script): the
stub records what the page would have shared.
"""

from pathlib import Path

import pytest
import requests

from tests import test_browser as shared
from tests.test_browser import (
    HTTP_TIMEOUT_SECONDS,
    HttpWorker,
    api_job,
    api_submit,
    assert_not_reloaded,
    expect,
    mark_page,
    phone_page,
)

pytestmark = pytest.mark.browser
browser, phone = shared.browser, shared.phone  # its fixtures, used here too

# Each share and each history pop is counted on <html>, so a test waits on them with expect().
SHARE_STUB = """
window.sharedFiles = [];
Navigator.prototype.canShare = function (data) { return Array.isArray(data?.files); };
Navigator.prototype.share = async function (data) {
  for (const file of data.files) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    window.sharedFiles.push({ name: file.name, type: file.type, bytes: Array.from(bytes) });
  }
  document.documentElement.dataset.shared = String(window.sharedFiles.length);
};
addEventListener("popstate", () => {
  const html = document.documentElement;
  html.dataset.pops = String(Number(html.dataset.pops || 0) + 1);
});
"""
NO_SHARE = "delete Navigator.prototype.share; delete Navigator.prototype.canShare;"


def done_job(url: str, prompt: str, grid: int = 1, parent_id: str | None = None) -> dict:
    """A finished job, queued through the API (a rerun of parent_id when given)."""
    if parent_id:
        response = requests.post(
            f"{url}/api/v1/jobs/{parent_id}/rerun", json={"prompt": prompt},
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        job = response.json()
    else:
        job = api_submit(url, prompt=prompt, grid=grid)
    worker = HttpWorker(url)
    claimed, lease = worker.claim()
    assert claimed["id"] == job["id"]
    return worker.finish(job["id"], lease, grid=job["grid"])


def stored_file(live_server, name: str) -> bytes:
    (path,) = Path(live_server.tmp_path, "data").rglob(name)
    return path.read_bytes()


def test_star_on_the_job_page_and_a_card_then_the_starred_filter(phone, live_server):
    url = live_server.url
    fox, owl, cub = (done_job(url, prompt) for prompt in ("a red fox", "a red owl", "a fox cub"))

    phone.goto(f"/jobs/{fox['id']}")
    mark_page(phone)
    star = phone.locator("#job").get_by_role("button", name="Star")
    expect(star).to_have_attribute("aria-pressed", "false")
    star.tap()
    expect(star).to_have_attribute("aria-pressed", "true")
    assert api_job(url, fox["id"])["starred"] is True
    assert_not_reloaded(phone)  # the API call, not the plain form

    phone.goto("/gallery")
    card = phone.locator(".card-item", has=phone.locator(f'a[href="/jobs/{cub["id"]}"]'))
    card.get_by_role("button", name="Star").tap()
    expect(card.get_by_role("button", name="Star")).to_have_attribute("aria-pressed", "true")
    assert api_job(url, cub["id"])["starred"] is True

    phone.get_by_role("link", name="★ Starred").tap()
    phone.wait_for_url("**/gallery?starred=true")
    cards = phone.locator("#gallery .card-item a.thumb-card")
    expect(cards).to_have_count(2)
    hrefs = cards.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == [f"/jobs/{cub['id']}", f"/jobs/{fox['id']}"]
    assert f"/jobs/{owl['id']}" not in hrefs

    phone.get_by_label("Search prompts").fill("red")
    phone.get_by_role("button", name="Search").tap()
    phone.wait_for_url("**q=red**")
    assert "starred=true" in phone.url and "q=red" in phone.url
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("href", f"/jobs/{fox['id']}")
    expect(phone.get_by_role("link", name="★ Starred")).to_have_attribute("aria-current", "page")


def test_the_family_strip_links_each_member_and_compare_shows_them_side_by_side(
    phone, live_server
):
    url = live_server.url
    parent = done_job(url, "a red fox")
    child = done_job(url, "a red fox at night", parent_id=parent["id"])
    waiting = requests.post(
        f"{url}/api/v1/jobs/{child['id']}/rerun", json={}, timeout=HTTP_TIMEOUT_SECONDS
    ).json()

    phone.goto(f"/jobs/{child['id']}")
    members = phone.locator("#family-strip .family-member")
    expect(members).to_have_count(3)
    ids = members.evaluate_all("items => items.map(item => item.dataset.jobId)")
    assert ids == [parent["id"], child["id"], waiting["id"]]
    expect(members.nth(1).locator("a")).to_have_attribute("aria-current", "page")
    expect(members.nth(0).locator("img")).to_have_attribute("src", parent["thumb_url"])
    expect(members.nth(2).locator(".family-status")).to_have_text("Queued")

    members.nth(0).locator("a").tap()
    phone.wait_for_url(f"**/jobs/{parent['id']}")
    expect(phone.locator("#family-strip .family-member")).to_have_count(2)  # parent and rerun
    phone.go_back()
    phone.wait_for_url(f"**/jobs/{child['id']}")

    phone.get_by_role("button", name="Compare ticked").tap()  # this job and its parent, ticked
    phone.wait_for_url("**/compare?*")
    items = phone.locator("#compare .compare-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text(f"seed {parent['seed']}")
    expect(items.nth(1)).to_contain_text(f"seed {child['seed']}")
    expect(items.nth(1).locator("mark")).to_have_text(["at", "night"])
    for item in (items.nth(0), items.nth(1)):
        expect(item.locator("img")).to_have_js_property("complete", True)
    left, right = items.nth(0).bounding_box(), items.nth(1).bounding_box()
    assert left["y"] == right["y"] and left["x"] + left["width"] <= right["x"]  # two abreast
    assert right["x"] + right["width"] <= 390
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390

    phone.goto(f"/compare?ids={parent['id']},nope")
    expect(phone.locator(".error-message")).to_contain_text("no job nope")


def test_a_tile_downloads_its_stored_png_and_shares_it_as_a_file(phone, live_server):
    phone.context.add_init_script(SHARE_STUB)
    job = done_job(live_server.url, "a red fox to keep", grid=2)
    stored = stored_file(live_server, "tile_1.png")
    assert b"iTXt" in stored  # the metadata chunk the server stamps

    phone.goto(f"/jobs/{job['id']}")
    phone.get_by_text("Download", exact=True).tap()
    with phone.expect_download() as download_info:
        phone.get_by_role("link", name="Image 2", exact=True).tap()
    download = download_info.value
    assert Path(download.path()).read_bytes() == stored
    assert download.suggested_filename.endswith("-tile_1.png")

    phone.get_by_role("button", name="Share image 2").tap()
    expect(phone.locator("html")).to_have_attribute("data-shared", "1")
    (shared,) = phone.evaluate("window.sharedFiles")
    assert shared["type"] == "image/png" and shared["name"] == download.suggested_filename
    assert bytes(shared["bytes"]) == stored


def test_the_share_button_is_hidden_where_files_cannot_be_shared(browser, live_server):
    context, page = phone_page(browser, live_server.url)
    context.add_init_script(NO_SHARE)
    job = done_job(live_server.url, "a fox nobody shares", grid=2)
    page.goto(f"/jobs/{job['id']}")
    page.get_by_text("Download", exact=True).tap()
    expect(page.get_by_role("link", name="Image 1", exact=True)).to_be_visible()
    expect(page.locator("#job-result .share-button")).to_have_count(4)
    for index in range(4):
        expect(page.locator("#job-result .share-button").nth(index)).to_be_hidden()
    page.locator("#job-result a.tile").first.tap()
    expect(page.locator("#lightbox-download")).to_be_visible()
    expect(page.locator("#lightbox-share")).to_be_hidden()
    context.close()


def test_back_closes_the_viewer_and_stays_on_the_job_page(phone, live_server):
    phone.context.add_init_script(SHARE_STUB)
    job = done_job(live_server.url, "a fox in the viewer", grid=2)
    job_url = f"{live_server.url}/jobs/{job['id']}"
    phone.goto("/gallery")
    phone.goto(f"/jobs/{job['id']}")
    mark_page(phone)
    lightbox = phone.locator("#lightbox")

    phone.locator("#job-result a.tile").nth(2).tap()
    expect(lightbox).to_be_visible()
    expect(phone.locator("#lightbox-prompt")).to_have_text("a fox in the viewer")
    expect(phone.locator("#lightbox-facts")).to_have_text(f"image 3 of 4 · seed {job['seed']}")
    tools = lightbox.get_by_role("toolbar")
    expect(tools.get_by_role("link", name="Download")).to_have_attribute(
        "href", f"/files/{job['id']}/tile_2.png?download=1")
    tools.get_by_role("button", name="Share").tap()
    expect(phone.locator("html")).to_have_attribute("data-shared", "1")
    assert phone.evaluate("window.sharedFiles[0].name").endswith("-tile_2.png")

    phone.go_back()
    expect(lightbox).to_be_hidden()
    expect(phone.locator("html")).to_have_attribute("data-pops", "1")
    assert phone.url == job_url
    assert_not_reloaded(phone)

    phone.locator("#job-result a.tile").first.tap()  # closed by its button: no entry left over
    expect(lightbox).to_be_visible()
    lightbox.get_by_role("button", name="Close").tap()
    expect(lightbox).to_be_hidden()
    expect(phone.locator("html")).to_have_attribute("data-pops", "2")  # its entry taken off
    assert phone.url == job_url
    phone.go_back()
    phone.wait_for_url("**/gallery")
