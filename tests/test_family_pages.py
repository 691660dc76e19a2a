"""Stars, families and compare on the pages, without JS (issue 18): the star's plain form, the
gallery's Starred filter, the family strip, /compare and its 4xx pages, and each tile's keep
buttons (download and share)."""

import pytest

from server.compare import COMPARE_MAX, marked_words
from tests.test_pages import fetched, page_token, text_of


def queued(client, prompt="a red fox", **fields) -> dict:
    return client.post("/api/v1/jobs", json={"prompt": prompt, "grid": 1, **fields}).json


def rerun(client, job_id, **body) -> dict:
    return client.post(f"/api/v1/jobs/{job_id}/rerun", json=body).json


def finish_oldest(worker) -> str:
    job, lease = worker.claim_one()
    assert worker.post_result(job["id"], lease, job["grid"]).status_code == 200
    return job["id"]


def test_the_star_form_stars_then_unstars_and_goes_back_where_it_was_sent_from(client):
    job_id = queued(client)["id"]
    token = page_token(client, f"/jobs/{job_id}")
    form = {"csrf_token": token, "starred": "true", "next": "/gallery?starred=true"}
    response = client.post(f"/jobs/{job_id}/star", data=form)
    assert response.status_code == 303 and response.location.endswith("/gallery?starred=true")
    assert client.get(f"/api/v1/jobs/{job_id}").json["starred"] is True
    html = text_of(client.get(f"/jobs/{job_id}"))
    assert 'aria-pressed="true"' in html and 'name="starred" value="false"' in html
    client.post(f"/jobs/{job_id}/star", data={"csrf_token": token, "starred": "false"})
    assert client.get(f"/api/v1/jobs/{job_id}").json["starred"] is False


def test_a_star_form_with_a_bad_value_is_a_readable_400_page(client):
    job_id = queued(client)["id"]
    token = page_token(client, f"/jobs/{job_id}")
    response = client.post(f"/jobs/{job_id}/star", data={"csrf_token": token, "starred": "yes"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "starred must be true or false" in text_of(response)


def test_the_gallery_starred_filter_keeps_the_search(client, worker):
    for prompt in ("red fox", "red owl", "blue fox"):
        queued(client, prompt)
    ids = [finish_oldest(worker) for _ in range(3)]
    client.post(f"/api/v1/jobs/{ids[0]}/star", json={"starred": True})
    client.post(f"/api/v1/jobs/{ids[2]}/star", json={"starred": True})
    html = text_of(client.get("/gallery?q=fox"))
    assert 'href="/gallery?q=fox&amp;starred=true"' in html
    starred = text_of(client.get("/gallery?q=fox&starred=true"))
    assert f"/jobs/{ids[0]}" in starred and f"/jobs/{ids[2]}" in starred
    assert f"/jobs/{ids[1]}" not in starred
    assert 'name="starred" value="true"' in starred  # the search box keeps the filter
    assert "red fox" in text_of(client.get("/gallery?q=red&starred=true"))
    assert "red owl" not in text_of(client.get("/gallery?q=red&starred=true"))
    assert client.get("/gallery?starred=maybe").status_code == 400


def test_the_job_page_shows_its_family_and_marks_itself(client):
    parent = queued(client)
    child = rerun(client, parent["id"])
    sibling = rerun(client, parent["id"], prompt="a red fox at night")
    grandchild = rerun(client, child["id"])
    loner = queued(client, "a loner")  # before any page: a page's cookie makes API writes need CSRF
    html = text_of(client.get(f"/jobs/{child['id']}"))
    strip = html[html.index('id="family-strip"'):]
    order = [strip.index(f'data-job-id="{job["id"]}"') for job in (parent, child, sibling, grandchild)]
    assert order == sorted(order)
    assert f'href="/jobs/{child["id"]}" aria-current="page"' in strip
    assert "Queued" in strip  # not done: its status instead of a thumbnail
    assert 'id="family-strip"' not in text_of(client.get(f"/jobs/{loner['id']}"))


def test_compare_shows_each_grid_seed_and_the_words_that_differ(client, worker):
    parent = queued(client, seed=7)
    edited = rerun(client, parent["id"], prompt="a blue fox", seed=8)
    finish_oldest(worker)
    response = client.get(f"/compare?ids={parent['id']},{edited['id']}")
    assert response.status_code == 200
    html = text_of(response)
    assert f'src="/files/{parent["id"]}/grid.png"' in html
    assert "seed 7" in html and "seed 8" in html and "<mark>blue</mark>" in html
    assert "Queued" in html  # the rerun is not done yet
    same = client.get(f"/compare?ids={parent['id']}&ids={edited['id']}")
    assert same.status_code == 200


def test_marked_words_marks_what_differs_from_the_first_prompt():
    assert marked_words("a blue fox", "a red fox") == [("a", False), ("blue", True), ("fox", False)]


@pytest.mark.parametrize(
    "query, status, message",
    [
        ("", 400, "at least two"),
        ("ids=ONE", 400, "at least two"),
        ("ids=ONE,ONE", 400, "at least two"),
        ("ids=" + ",".join(f"j{i}" for i in range(COMPARE_MAX + 1)), 400, "at most"),
        ("ids=ONE,ghost", 404, "no job ghost"),
    ],
)
def test_compare_refuses_bad_ids_with_a_readable_page(client, query, status, message):
    job_id = queued(client)["id"]
    response = client.get("/compare?" + query.replace("ONE", job_id))
    assert response.status_code == status and response.mimetype == "text/html"
    assert message in text_of(response)


def test_each_tile_has_a_download_and_a_share_button_serving_the_stored_png(client, worker):
    job_id = queued(client, grid=2)["id"]
    finish_oldest(worker)
    html = text_of(client.get(f"/jobs/{job_id}"))
    for index in range(4):
        assert f'href="/files/{job_id}/tile_{index}.png?download=1" download' in html
        assert f'data-share-url="/files/{job_id}/tile_{index}.png"' in html
    assert 'data-share-name="a-red-fox-seed-' in html
    download = fetched(client, f"/files/{job_id}/tile_1.png?download=1")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.data == fetched(client, f"/files/{job_id}/tile_1.png").data
    assert b"iTXt" in download.data and b"prompt" in download.data
