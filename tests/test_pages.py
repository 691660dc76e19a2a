"""The phone pages through the Flask test client: forms, redirects, CSRF, login, manifest, errors.

The browser-side behaviour (live updates, lightbox, infinite scroll) is in test_browser.py.
"""

import base64
import io
import json
import re
import sqlite3
from html import unescape
from pathlib import Path

import pytest
from PIL import Image

from server import create_app, pages

META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def text_of(response) -> str:
    return response.get_data(as_text=True)


def fetched(client, path):
    """GET a file response, read and closed (send_file leaves its file open until closed)."""
    with client.get(path) as response:
        response.get_data()
    return response


def page_token(client, path="/") -> str:
    """The CSRF token a page hands out, read from its HTML as a browser would."""
    html = text_of(client.get(path))
    match = FORM_TOKEN.search(html) or META_TOKEN.search(html)
    assert match, html
    return match.group(1)


def submit(client, **fields):
    return client.post("/jobs", data={"csrf_token": page_token(client), **fields})


def submitted_id(response) -> str:
    assert response.status_code == 303, text_of(response)
    match = re.fullmatch(r"/#job-([\w-]+)", response.location)
    assert match, response.location
    return match.group(1)


def api_job(client, job_id) -> dict:
    response = client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200
    return response.json


def all_jobs(client) -> list[dict]:
    return client.get("/api/v1/jobs?limit=100").json["jobs"]


def finish(worker, job_id) -> dict:
    """Run the oldest queued job (which must be job_id) to done with real PNGs."""
    job, lease = worker.claim_one()
    assert job["id"] == job_id
    response = worker.post_result(job_id, lease, job["grid"])
    assert response.status_code == 200, text_of(response)
    return response.json


def done_job(client, worker, prompt="a red fox", grid="2") -> str:
    job_id = submitted_id(submit(client, prompt=prompt, grid=grid))
    finish(worker, job_id)
    return job_id


def row_ids(html: str) -> list[str]:
    """Job ids of the rendered rows, in page order (the blank <template> row has an empty id)."""
    return [job_id for job_id in re.findall(r'data-job-id="([^"]*)"', html) if job_id]


def rerun(client, job_id, **fields):
    token = page_token(client, f"/jobs/{job_id}")
    response = client.post(f"/jobs/{job_id}/rerun", data={"csrf_token": token, **fields})
    return response


def rerun_id(response) -> str:
    assert response.status_code == 303, text_of(response)
    match = re.fullmatch(r"/jobs/([\w-]+)", response.location)
    assert match, response.location
    return match.group(1)


# -- the submit page ------------------------------------------------------------------------------
def test_index_has_the_form_with_api_defaults(client):
    response = client.get("/")
    html = text_of(response)
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    assert re.search(r"<textarea name=\"prompt\"", html)
    assert re.search(r'name="grid" value="3" checked', html)
    assert all(f'name="grid" value="{size}"' in html for size in (1, 2, 3, 4))
    assert 'name="seed"' in html
    advanced = html[html.index('<details class="advanced">') : html.index("</details>")]
    assert 'name="model" value="mini"' in advanced
    assert 'name="temperature" inputmode="decimal" value="1.0"' in advanced
    assert 'name="top_k" inputmode="numeric" value="50"' in advanced
    assert 'name="top_p" inputmode="decimal" value=""' in advanced
    assert 'name="condition_scale" inputmode="decimal" value="10.0"' in advanced
    assert FORM_TOKEN.search(html).group(1) == META_TOKEN.search(html).group(1)
    assert 'name="viewport"' in html and 'rel="manifest"' in html
    assert 'rel="apple-touch-icon"' in html
    assert "Nothing queued" in html


def test_submit_queues_a_job_and_redirects_to_the_queue(client):
    response = submit(client, prompt="  a red fox in snow ", grid="2", seed="7", top_p="0.9")
    job_id = submitted_id(response)
    job = api_job(client, job_id)
    assert (job["prompt"], job["grid"], job["seed"], job["status"]) == (
        "a red fox in snow", 2, 7, "queued")
    assert job["params"] == {
        "temperature": 1.0, "top_k": 50, "top_p": 0.9, "condition_scale": 10.0}
    html = text_of(client.get("/"))
    assert row_ids(html) == [job_id]
    assert "#1 in line" in html
    assert "Queued “a red fox in snow”" in html  # the flash, once
    assert "Queued “a red fox in snow”" not in text_of(client.get("/"))


def test_live_queue_lists_running_first_then_queued_then_finished(client, worker):
    finished = done_job(client, worker, prompt="finished")
    first = submitted_id(submit(client, prompt="first"))
    second = submitted_id(submit(client, prompt="second"))
    third = submitted_id(submit(client, prompt="third"))
    job, lease = worker.claim_one()
    assert job["id"] == first
    assert worker.heartbeat(first, lease, progress=0.25).status_code == 200
    html = text_of(client.get("/"))
    active = html[html.index('id="active-list"') : html.index('id="recent-list"')]
    recent = html[html.index('id="recent-list"') : html.index('id="job-row-template"')]
    assert row_ids(active) == [first, second, third]
    assert 'value="0.25"' in active and "25%" in active
    assert "#1 in line" in active and "#2 in line" in active
    assert "1 running · 2 queued" in html
    assert row_ids(recent) == [finished]
    assert f'src="/files/{finished}/thumb.webp"' in recent


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_submit_without_the_right_csrf_token_is_refused(client, token):
    page_token(client)  # the session has a token; the form below does not carry it
    data = {"prompt": "a red fox"} | ({"csrf_token": token} if token else {})
    response = client.post("/jobs", data=data)
    assert response.status_code == 403
    assert response.content_type.startswith("text/html")
    assert "Refused" in text_of(response) and "reload the page" in text_of(response)
    assert all_jobs(client) == []


def test_submit_from_another_site_is_refused(client):
    token = page_token(client)
    response = client.post(
        "/jobs", data={"prompt": "x", "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert all_jobs(client) == []


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"grid": "9"}, "grid must be between 1 and 4"),
        ({"seed": "-1"}, "seed must be between 0 and"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_p": "1.5"}, "top_p must be > 0 and <= 1"),
    ],
)
def test_a_validation_error_shows_the_form_again_with_everything_typed(client, fields, message):
    prompt = 'a <b>"quoted"</b> fox\nsecond line'
    typed = {"temperature": "1.5", "top_k": "64"} | fields
    response = submit(client, prompt=prompt, **typed)
    html = text_of(response)
    assert response.status_code == 400
    assert message in unescape(html)
    textarea = re.search(r"<textarea name=\"prompt\"[^>]*>(.*?)</textarea>", html, re.DOTALL)
    assert unescape(textarea.group(1)) == prompt
    assert "<b>" not in textarea.group(1)  # escaped, not markup
    typed.pop("grid", None)  # a radio group: there is no "9" button to show as chosen
    for name, value in typed.items():
        assert re.search(rf'name="{name}"[^>]*value="{re.escape(value)}"', html), name
    assert all_jobs(client) == []


def input_tag(html: str, name: str) -> str:
    match = re.search(rf'<(?:input|textarea) name="{name}"[^>]*>', html)
    assert match, name
    return match.group(0)


@pytest.mark.parametrize("name", ["temperature", "top_k", "top_p", "condition_scale", "model"])
def test_an_advanced_fields_error_opens_advanced_and_marks_that_field(client, name):
    bad = {"temperature": "99", "top_k": "0", "top_p": "2", "condition_scale": "-1",
           "model": "no spaces"}[name]
    html = text_of(submit(client, prompt="a fox", **{name: bad}))
    assert '<details class="advanced" open>' in html
    field = input_tag(html, name)
    assert 'aria-invalid="true"' in field and "autofocus" in field
    # the model's input also points at its "no worker asked for it" hint
    assert re.search(r'aria-describedby="(no-worker-hint )?form-error"', field)
    assert 'aria-invalid' not in input_tag(html, "prompt")
    # the message sits right after the field's label, not under the prompt
    assert re.search(rf'{re.escape(field)}</label>\s*<p class="form-error" id="form-error"', html)


def test_a_prompt_error_marks_the_prompt_and_leaves_advanced_folded(client):
    html = text_of(submit(client, prompt="   "))
    assert '<details class="advanced">' in html
    prompt = input_tag(html, "prompt")
    assert 'aria-invalid="true"' in prompt
    assert 'aria-describedby="prompt-count form-error"' in prompt


def test_an_empty_prompt_is_refused_with_a_message(client):
    response = submit(client, prompt="   ")
    assert response.status_code == 400
    assert "prompt must not be empty" in text_of(response)


# -- the job page ---------------------------------------------------------------------------------
def test_job_page_of_a_queued_job_has_status_and_every_button(client):
    job_id = submitted_id(submit(client, prompt="a <i>fox</i>", seed="42", grid="3"))
    response = client.get(f"/jobs/{job_id}")
    html = text_of(response)
    assert response.status_code == 200
    assert "a &lt;i&gt;fox&lt;/i&gt;" in html and "<i>fox" not in html
    assert ">Queued<" in html and "#1 in line" in html
    assert "<dd>42</dd>" in html and "<dd>3×3</dd>" in html
    for action in ("rerun", "cancel", "delete"):
        assert f'action="/jobs/{job_id}/{action}"' in html
    assert "Rerun with new seeds" in html and "Rerun same seed" in html
    assert "Edit prompt" in html and "Delete for good" in html
    assert html.count('class="tile"') == 9  # the empty squares the grid will fill
    assert "?download=1" not in html


def test_job_page_of_a_done_job_shows_the_grid_and_downloads(client, worker):
    job_id = done_job(client, worker, grid="2")
    html = text_of(client.get(f"/jobs/{job_id}"))
    tiles = re.findall(r'<a class="tile" href="([^"]+)"', html)
    assert tiles == [f"/files/{job_id}/tile_{i}.png" for i in range(4)]
    assert f'href="/files/{job_id}/grid.png?download=1"' in html
    assert f'action="/jobs/{job_id}/cancel"' not in html  # nothing left to cancel
    tile = fetched(client, tiles[3])
    assert tile.status_code == 200 and tile.data.startswith(b"\x89PNG")
    download = fetched(client, f"/files/{job_id}/grid.png?download=1")
    assert download.headers["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("stored_meta, device_shown", [
    pytest.param('{"device": "\\ud800 gpu"}', "? gpu", id="lone-surrogate"),
    pytest.param('{"device": "gpu\\u0007"}', "gpu", id="control-character"),
    pytest.param('{"device": ', None, id="broken-json"),
    pytest.param("[" * 5000 + "]" * 5000, None, id="deeply-nested"),
    pytest.param('["a list"]', None, id="not-an-object"),
])
def test_a_job_page_renders_whatever_meta_is_already_stored(
    settings, client, worker, stored_meta, device_shown
):
    """Rows written before meta was checked must not take the page (and its delete button) down."""
    job_id = done_job(client, worker, grid="1")
    database = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))
    with database:
        database.execute("UPDATE jobs SET result_meta = ? WHERE id = ?", (stored_meta, job_id))
    database.close()
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert f'action="/jobs/{job_id}/delete"' in text_of(page)
    if device_shown:
        assert device_shown in text_of(page)
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200
    assert client.get("/api/v1/jobs").status_code == 200
    assert client.get("/gallery").status_code == 200


def test_rerun_with_new_seeds_makes_a_child_job(client):
    parent = submitted_id(submit(client, prompt="a red fox", seed="5", grid="2"))
    child = rerun_id(rerun(client, parent, seed="new"))
    job = api_job(client, child)
    assert job["parent_id"] == parent and job["status"] == "queued"
    assert (job["prompt"], job["grid"]) == ("a red fox", 2)
    assert job["seed"] != 5
    html = text_of(client.get(f"/jobs/{child}"))
    assert f'class="parent-link" href="/jobs/{parent}"' in html


def test_rerun_same_seed_keeps_seed_and_params(client):
    parent = submitted_id(submit(client, prompt="a red fox", seed="5", top_k="7"))
    job = api_job(client, rerun_id(rerun(client, parent, seed="same")))
    assert (job["seed"], job["params"]["top_k"], job["parent_id"]) == (5, 7, parent)


def test_edit_prompt_reruns_the_edited_prompt(client):
    parent = submitted_id(submit(client, prompt="a red fox", seed="5"))
    job = api_job(client, rerun_id(rerun(client, parent, prompt="a blue fox", seed="same")))
    assert (job["prompt"], job["seed"], job["parent_id"]) == ("a blue fox", 5, parent)


def test_an_invalid_edit_keeps_what_was_typed(client):
    parent = submitted_id(submit(client, prompt="a red fox"))
    typed = "a blue fox " * 60  # over 500 characters
    response = rerun(client, parent, prompt=typed, seed="new")
    html = text_of(response)
    assert response.status_code == 400
    assert "prompt must be at most 500 characters" in html
    assert '<details class="edit" open>' in html
    assert typed in unescape(html)
    assert re.search(r'value="new" checked', html)
    assert len(all_jobs(client)) == 1


def test_edit_and_rerun_offers_the_grid_and_knobs_prefilled(client):
    parent = submitted_id(submit(client, prompt="a red fox", grid="2", temperature="1.5",
                                 top_p="0.9"))
    html = text_of(client.get(f"/jobs/{parent}"))
    assert re.search(r'name="grid" value="2" checked', html)
    assert 'value="1.5"' in input_tag(html, "temperature")
    assert 'value="0.9"' in input_tag(html, "top_p")
    new_id = rerun_id(rerun(client, parent, prompt="a red fox", seed="same", grid="3",
                            temperature="2.5", top_k="64", top_p="", condition_scale="3"))
    job = api_job(client, new_id)
    assert job["grid"] == 3 and job["parent_id"] == parent
    # an emptied top_p box means "off", as the submit form's placeholder says
    assert job["params"] == {"temperature": 2.5, "top_k": 64, "top_p": None,
                             "condition_scale": 3.0}


def test_an_invalid_rerun_knob_opens_the_edit_form_and_marks_it(client):
    parent = submitted_id(submit(client, prompt="a red fox"))
    response = rerun(client, parent, prompt="a red fox", seed="same", temperature="99")
    html = text_of(response)
    assert response.status_code == 400
    assert '<details class="edit" open>' in html
    field = input_tag(html, "temperature")
    assert 'aria-invalid="true"' in field and 'aria-describedby="rerun-error"' in field
    assert 'value="99"' in field
    assert 'aria-invalid' not in input_tag(html, "prompt")


def test_cancel_a_queued_job(client):
    job_id = submitted_id(submit(client, prompt="a red fox"))
    token = page_token(client, f"/jobs/{job_id}")
    response = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert response.status_code == 303 and response.location == f"/jobs/{job_id}"
    assert api_job(client, job_id)["status"] == "canceled"
    again = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert again.status_code == 409 and "already canceled" in text_of(again)
    assert again.content_type.startswith("text/html")


def test_cancel_from_the_queue_goes_back_to_the_queue_never_elsewhere(client):
    first = submitted_id(submit(client, prompt="one"))
    second = submitted_id(submit(client, prompt="two"))
    token = page_token(client)
    response = client.post(f"/jobs/{first}/cancel", data={"csrf_token": token, "next": "/"})
    assert response.location == "/"
    response = client.post(
        f"/jobs/{second}/cancel", data={"csrf_token": token, "next": "https://evil.example/"}
    )
    assert response.location == f"/jobs/{second}"


def test_cancel_a_running_job_asks_its_worker_to_stop(client, worker):
    job_id = submitted_id(submit(client, prompt="a red fox"))
    _, lease = worker.claim_one()
    token = page_token(client, f"/jobs/{job_id}")
    assert client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token}).status_code == 303
    assert worker.heartbeat(job_id, lease).json["cancel_requested"] is True
    assert "Stopping" in text_of(client.get(f"/jobs/{job_id}"))


def test_delete_removes_the_job_and_its_files(app, client, worker):
    job_id = done_job(client, worker)
    files_dir = Path(app.config["DALLEQ"].data_dir) / "jobs"
    (folder,) = files_dir.iterdir()
    assert (folder / "grid.png").is_file()
    token = page_token(client, f"/jobs/{job_id}")
    response = client.post(f"/jobs/{job_id}/delete", data={"csrf_token": token})
    assert response.status_code == 303 and response.location == "/gallery"
    assert not folder.exists()
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert fetched(client, f"/files/{job_id}/grid.png").status_code == 404
    assert "Deleted." in text_of(client.get("/gallery"))


def test_buttons_without_a_token_change_nothing(client):
    job_id = submitted_id(submit(client, prompt="a red fox"))
    for action in ("rerun", "cancel", "delete"):
        response = client.post(f"/jobs/{job_id}/{action}", data={"seed": "new"})
        assert response.status_code == 403, action
    assert [job["id"] for job in all_jobs(client)] == [job_id]
    assert api_job(client, job_id)["status"] == "queued"


@pytest.mark.parametrize(
    "path, target",
    [("/jobs", "/"), ("/jobs/abc/rerun", "/jobs/abc"), ("/jobs/abc/delete", "/jobs/abc")],
)
def test_opening_a_form_address_goes_to_its_page(client, path, target):
    # After a 400 page the address bar shows the form's address; opening it again must not 405.
    response = client.get(path)
    assert response.status_code == 302 and response.location == target


# -- the gallery ----------------------------------------------------------------------------------
def test_gallery_shows_finished_jobs_newest_first_with_lazy_thumbnails(client, worker):
    older = done_job(client, worker, prompt="an old lighthouse")
    newer = done_job(client, worker, prompt="a new lighthouse")
    submitted_id(submit(client, prompt="still queued lighthouse"))
    html = text_of(client.get("/gallery"))
    links = re.findall(r'<a class="thumb-card" data-field="link" href="/jobs/([\w-]+)"', html)
    assert links == [newer, older]
    thumbs = re.findall(r'<img data-field="thumb"[^>]*>', html)
    assert len(thumbs) == 3  # two cards and the <template> card
    assert all('loading="lazy"' in thumb for thumb in thumbs)
    assert f'src="/files/{newer}/thumb.webp"' in html
    thumb = fetched(client, f"/files/{newer}/thumb.webp")
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.data)).format == "WEBP"
    assert 'id="more"' not in html


def test_gallery_search(client, worker):
    fox = done_job(client, worker, prompt="a red fox in the snow")
    done_job(client, worker, prompt="a lighthouse at night")
    html = text_of(client.get("/gallery?q=fox"))
    assert re.findall(r'href="/jobs/([\w-]+)"', html) == [fox]
    assert 'name="q" value="fox"' in html
    assert "No finished prompts match “whale”" in text_of(client.get("/gallery?q=whale"))


def test_gallery_search_for_an_emoji_alone_lists_only_the_prompts_with_it(client, worker):
    fox = done_job(client, worker, prompt="a fox 🦊 in the snow")
    done_job(client, worker, prompt="a lighthouse at night")
    html = text_of(client.get("/gallery", query_string={"q": "🦊"}))
    assert re.findall(r'href="/jobs/([\w-]+)"', html) == [fox]
    html = text_of(client.get("/gallery", query_string={"q": "?!"}))
    assert re.findall(r'href="/jobs/([\w-]+)"', html) == []
    assert "No finished prompts match “?!”" in html


def test_gallery_pages_through_everything_with_more_links(client, worker, monkeypatch):
    monkeypatch.setattr(pages, "GALLERY_PAGE_SIZE", 2)
    made = [done_job(client, worker, prompt=f"lighthouse number {n}", grid="1") for n in range(5)]
    seen, url, page_count = [], "/gallery?q=lighthouse", 0
    while url:
        html = text_of(client.get(url))
        seen += re.findall(r'<a class="thumb-card" data-field="link" href="/jobs/([\w-]+)"', html)
        more = re.search(r'id="more" rel="next"\s+href="([^"]+)"', html)
        url = unescape(more.group(1)) if more else None
        page_count += 1
        if url:
            assert "q=lighthouse" in url
    assert seen == made[::-1]
    assert page_count == 3


@pytest.mark.parametrize("cursor", [
    "not-a-cursor",
    base64.urlsafe_b64encode(b"s99999999999999999999999").decode().rstrip("="),  # overflows
])
def test_gallery_with_a_bad_cursor_is_a_readable_400(client, cursor):
    response = client.get("/gallery", query_string={"cursor": cursor})
    assert response.status_code == 400
    assert response.content_type.startswith("text/html")
    assert "cursor is not one this server handed out" in text_of(response)


# -- the optional password ------------------------------------------------------------------------
@pytest.fixture
def locked_app(settings):
    app = create_app(settings.replace(password="pw"))
    yield app
    app.extensions["dalleq"].engine.dispose()


@pytest.fixture
def locked_client(locked_app):
    return locked_app.test_client()


def log_in(client, password="pw", next_path="/"):
    token = page_token(client, "/login")
    return client.post(
        "/login", data={"csrf_token": token, "password": password, "next": next_path}
    )


@pytest.mark.parametrize("path", ["/", "/gallery?q=fox", "/jobs/abc"])
def test_every_page_asks_for_the_password_first(locked_client, path):
    # The test client comes from 127.0.0.1: being local must not count as logged in.
    response = locked_client.get(path)
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")
    login_page = locked_client.get(response.location)
    assert login_page.status_code == 200
    assert 'type="password"' in text_of(login_page)
    assert f'name="next" value="{path}"' in unescape(text_of(login_page))


def test_a_post_without_login_is_refused_and_creates_nothing(locked_client, locked_app):
    token = page_token(locked_client, "/login")
    response = locked_client.post("/jobs", data={"csrf_token": token, "prompt": "a fox"})
    assert response.status_code == 401
    assert "Log in first" in text_of(response)
    rows, _ = locked_app.extensions["dalleq"].catalog.page(limit=10)
    assert rows == []


def test_wrong_password_is_401_with_a_generic_message(locked_client):
    response = log_in(locked_client, password="nope")
    assert response.status_code == 401
    assert "Wrong password." in text_of(response)
    assert locked_client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(locked_client):
    page_token(locked_client, "/login")
    response = locked_client.post("/login", data={"password": "pw"})
    assert response.status_code == 403
    assert locked_client.get("/").status_code == 302


def test_right_password_logs_in_goes_to_next_and_logout_locks_again(locked_client):
    response = log_in(locked_client, next_path="/gallery?q=fox")
    assert response.status_code == 303 and response.location == "/gallery?q=fox"
    page = locked_client.get("/")
    assert page.status_code == 200 and "Log out" in text_of(page)
    token = page_token(locked_client)
    assert submitted_id(locked_client.post("/jobs", data={"csrf_token": token, "prompt": "fox"}))
    logout = locked_client.post("/logout", data={"csrf_token": page_token(locked_client)})
    assert logout.status_code == 303
    assert locked_client.get("/").status_code == 302


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
     "evil.example", "/\t/evil.example", ""],
)
def test_login_never_redirects_off_the_site(locked_client, next_path):
    response = log_in(locked_client, next_path=next_path)
    assert response.status_code == 303
    assert response.location == "/"


def test_manifest_icons_and_script_need_no_login(locked_client):
    for path in ("/manifest.webmanifest", "/static/icon-192.png", "/static/style.css", "/sw.js"):
        assert fetched(locked_client, path).status_code == 200, path


def test_login_page_without_password_goes_home(client):
    assert client.get("/login?next=/gallery").location == "/gallery"


# -- PWA, errors, notice --------------------------------------------------------------------------
def test_manifest_is_valid_with_real_icons(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.content_type == "application/manifest+json"
    manifest = json.loads(response.data)
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    assert manifest["name"] and manifest["short_name"] and manifest["theme_color"].startswith("#")
    sizes = set()
    for icon in manifest["icons"]:
        image_response = fetched(client, icon["src"])
        assert image_response.status_code == 200 and icon["type"] == "image/png"
        image = Image.open(io.BytesIO(image_response.data))
        assert image.format == "PNG" and f"{image.width}x{image.height}" == icon["sizes"]
        sizes.add(icon["sizes"])
    assert sizes == {"192x192", "512x512"}
    touch = fetched(client, "/static/apple-touch-icon.png")
    assert Image.open(io.BytesIO(touch.data)).size == (180, 180)


def test_pages_name_no_device_a_worker_may_not_have(client):
    """A worker may run on a CPU: the pages and the manifest never promise a GPU."""
    for path in ("/", "/gallery", "/manifest.webmanifest"):
        assert "GPU" not in client.get(path).get_data(as_text=True)


def test_unknown_job_is_a_readable_404_page(client):
    response = client.get("/jobs/no-such-job")
    assert response.status_code == 404
    assert response.content_type.startswith("text/html")
    html = text_of(response)
    assert "Not found" in html and "no job no-such-job" in html
    assert "Back to the queue" in html
    assert 'name="csrf-token"' not in html  # error pages never touch the session


def test_error_pages_set_no_session_cookie(client):
    response = client.get("/jobs/no-such-job")
    assert "Set-Cookie" not in response.headers


def test_notice_banner_shows_when_configured(app, client):
    app.config["DALLEQ_NOTICE"] = "Demo model: random weights"
    html = text_of(client.get("/"))
    assert '<details class="notice" id="notice" open>' in html
    assert "<summary>Demo model</summary>" in html
    assert '<p role="status">Demo model: random weights</p>' in html
    assert "Demo model: random weights" in text_of(client.get("/jobs/nope"))


@pytest.mark.parametrize(
    "target, expected",
    [("/jobs/a?b=1", "/jobs/a?b=1"), ("/", "/"), (None, "/"), ("//x.example", "/"),
     ("/\\x.example", "/"), ("https://x.example/", "/"), ("x", "/"), ("/a\nb", "/")],
)
def test_safe_next(target, expected):
    assert pages.safe_next(target) == expected


def test_gallery_cards_show_their_date_and_a_badge_unless_done(app, client, worker):
    from flask import render_template

    job_id = done_job(client, worker, prompt="a dated fox")
    created_at = client.get(f"/api/v1/jobs/{job_id}").json["created_at"]
    html = text_of(client.get("/gallery"))
    assert f'<time class="card-date" data-field="created" datetime="{created_at}">' in html
    assert re.search(r'data-field="badge" data-status="done" hidden>', html)
    failed = dict(pages.BLANK_JOB, id="abc", prompt="a failed fox", status="failed",
                  created_at="2026-11-01T09:00:00.000Z")
    with app.test_request_context("/gallery"):
        card = render_template("_gallery_card.html", job=failed)
    assert re.search(r'data-field="badge" data-status="failed">Failed</span>', card)
    assert '>2026-11-01</time>' in card


# -- sharing into the queue (issue 18) ------------------------------------------------------------
def test_manifest_declares_a_get_share_target_on_the_queue_page(client):
    manifest = json.loads(client.get("/manifest.webmanifest").data)
    assert manifest["share_target"] == {
        "action": "/", "method": "GET", "params": {"title": "title", "text": "text", "url": "url"},
    }


def prompt_box(html: str) -> str:
    return html.split('name="prompt"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0]


@pytest.mark.parametrize(
    ("query", "prompt"),
    [
        ("prompt=an+owl+at+dawn", "an owl at dawn"),
        ("title=A+title&text=a+lake+at+night&url=https://x.example/", "a lake at night"),
        ("title=a+red+bicycle&url=https://x.example/a", "a red bicycle"),
        ("text=https://x.example/only-a-link&title=a+bridge", "a bridge"),
    ],
)
def test_a_shared_link_fills_the_prompt_and_queues_nothing(client, query, prompt):
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    assert prompt_box(text_of(response)) == prompt
    assert client.get("/api/v1/jobs").get_json()["jobs"] == []


def test_a_shared_link_alone_fills_nothing_and_says_why(client):
    html = text_of(client.get("/?url=https://x.example/a&text=https://x.example/a"))
    assert prompt_box(html) == ""
    assert "A link alone is not a prompt" in html


def test_a_shared_text_over_the_limit_is_cut_with_a_note(client):
    html = text_of(client.get("/?text=" + "a" * 812))
    assert prompt_box(html) == "a" * 500
    assert "The shared text has 812 characters; the prompt keeps the first 500." in html
