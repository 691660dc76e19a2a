"""The people's API (shared/API.md, "For people"): every endpoint and its error cases."""

import base64

import pytest

from server import create_app

HUGE_INTEGER = 10**400  # float() of it overflows
# A cursor shaped like ours whose seq no database integer holds.
OVERFLOWING_CURSOR = base64.urlsafe_b64encode(b"s99999999999999999999999").decode().rstrip("=")


def submit(client, **body):
    body.setdefault("prompt", "a watercolor fox")
    return client.post("/api/v1/jobs", json=body)


def test_submit_returns_the_job_with_reference_defaults(client):
    response = submit(client, prompt="  a watercolor fox  ")
    assert response.status_code == 201
    job = response.json
    assert job["prompt"] == "a watercolor fox"
    assert job["grid"] == 3 and job["model"] == "mini"
    assert job["params"] == {
        "temperature": 1.0, "top_k": 50, "top_p": None, "condition_scale": 10.0
    }
    assert job["status"] == "queued" and job["position"] == 1 and job["attempts"] == 0
    assert 0 <= job["seed"] <= 2**31 - 1
    assert job["progress"] == 0.0 and job["error"] is None and job["parent_id"] is None
    assert job["created_at"].endswith("Z") and job["started_at"] is None
    assert job["grid_url"] is None and job["image_urls"] == [] and job["thumb_url"] is None
    assert client.get(f"/api/v1/jobs/{job['id']}").json == job


def test_submit_keeps_every_given_field(client):
    job = submit(
        client, seed=7, grid=2, model="mega", temperature=0.7, top_k=1, top_p=0.9,
        condition_scale=3,
    ).json
    assert (job["seed"], job["grid"], job["model"]) == (7, 2, "mega")
    assert job["params"] == {"temperature": 0.7, "top_k": 1, "top_p": 0.9, "condition_scale": 3.0}


def test_unseeded_jobs_get_different_random_seeds(client):
    seeds = {submit(client).json["seed"] for _ in range(5)}
    assert len(seeds) > 1


def test_positions_count_the_queue(client):
    ids = [submit(client).json["id"] for _ in range(3)]
    assert [client.get(f"/api/v1/jobs/{i}").json["position"] for i in ids] == [1, 2, 3]
    client.post(f"/api/v1/jobs/{ids[0]}/cancel")
    assert client.get(f"/api/v1/jobs/{ids[2]}").json["position"] == 2


BAD_SUBMISSIONS = [
    ({"prompt": ""}, "invalid_prompt"),
    ({"prompt": "   "}, "invalid_prompt"),
    ({"prompt": "x" * 501}, "invalid_prompt"),
    ({"prompt": 5}, "invalid_prompt"),
    ({"prompt": "a\x00b"}, "invalid_prompt"),
    ({"prompt": "lone \ud800 surrogate"}, "invalid_prompt"),
    ({"seed": -1}, "invalid_seed"),
    ({"seed": 2**31}, "invalid_seed"),
    ({"seed": 1.5}, "invalid_seed"),
    ({"seed": True}, "invalid_seed"),
    ({"grid": 0}, "invalid_grid"),
    ({"grid": 5}, "invalid_grid"),
    ({"grid": "big"}, "invalid_grid"),
    ({"temperature": 0}, "invalid_temperature"),
    ({"temperature": 5.01}, "invalid_temperature"),
    ({"temperature": "warm"}, "invalid_temperature"),
    ({"top_k": 0}, "invalid_top_k"),
    ({"top_k": 16385}, "invalid_top_k"),
    ({"top_p": 0}, "invalid_top_p"),
    ({"top_p": 1.5}, "invalid_top_p"),
    ({"condition_scale": 0.5}, "invalid_condition_scale"),
    ({"condition_scale": 51}, "invalid_condition_scale"),
    ({"model": "../etc"}, "invalid_model"),
    ({"model": ["mini"]}, "invalid_model"),
    ({"temperature": HUGE_INTEGER}, "invalid_temperature"),
    ({"top_p": HUGE_INTEGER}, "invalid_top_p"),
    ({"condition_scale": HUGE_INTEGER}, "invalid_condition_scale"),
    ({"condition_scale": -HUGE_INTEGER}, "invalid_condition_scale"),
    ({"top_k": HUGE_INTEGER}, "invalid_top_k"),
    ({"seed": HUGE_INTEGER}, "invalid_seed"),
]


@pytest.mark.parametrize("changes, code", BAD_SUBMISSIONS)
def test_bad_submissions_get_400_with_a_code_and_create_nothing(client, changes, code):
    body = {"prompt": "a fox", **changes}
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]
    assert client.get("/api/v1/jobs").json["jobs"] == []


def test_limits_are_inclusive(client):
    assert submit(client, prompt="x" * 500, seed=2**31 - 1, grid=4, temperature=5, top_k=16384,
                  top_p=1, condition_scale=50).status_code == 201
    assert submit(client, seed=0, grid=1, condition_scale=1).status_code == 201


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000])
def test_malformed_json_is_a_400_not_a_500(client, raw):
    response = client.post("/api/v1/jobs", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] in ("invalid_json", "invalid_body")


def test_unknown_job_is_404_json(client):
    for response in (
        client.get("/api/v1/jobs/nope"),
        client.post("/api/v1/jobs/nope/rerun"),
        client.post("/api/v1/jobs/nope/cancel"),
        client.delete("/api/v1/jobs/nope"),
    ):
        assert response.status_code == 404
        assert response.json["error"]["code"] == "not_found"


def test_wrong_method_is_json_405(client):
    response = client.put("/api/v1/jobs")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"


def test_listing_is_newest_first_with_cursor_pages(client):
    ids = [submit(client, prompt=f"prompt {i}").json["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        query = "/api/v1/jobs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query).json
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_listing_filters_by_status(client, worker):
    queued = submit(client).json["id"]
    canceled = submit(client).json["id"]
    client.post(f"/api/v1/jobs/{canceled}/cancel")
    def ids(statuses):
        return [j["id"] for j in client.get(f"/api/v1/jobs?status={statuses}").json["jobs"]]

    assert ids("queued") == [queued]
    assert ids("canceled") == [canceled]
    assert ids("queued,canceled") == [canceled, queued]
    assert ids("done") == []


@pytest.mark.parametrize(
    "query, code",
    [("status=sleeping", "invalid_status"), ("limit=0", "invalid_limit"),
     ("limit=101", "invalid_limit"), ("limit=ten", "invalid_limit"),
     ("cursor=!!!", "invalid_cursor"), ("cursor=bm9wZQ", "invalid_cursor"),
     (f"cursor={OVERFLOWING_CURSOR}", "invalid_cursor"),
     (f"cursor={OVERFLOWING_CURSOR}&q=fox", "invalid_cursor"),
     (f"cursor={OVERFLOWING_CURSOR}&status=queued,done", "invalid_cursor"),
     ("cursor=" + base64.urlsafe_b64encode(b"s-1").decode(), "invalid_cursor")],
)
def test_bad_listing_queries_get_400(client, query, code):
    response = client.get(f"/api/v1/jobs?{query}")
    assert response.status_code == 400
    assert response.json["error"]["code"] == code


def test_search_matches_every_word_as_a_prefix(client):
    fox = submit(client, prompt="A red foxglove in the rain").json["id"]
    owl = submit(client, prompt="an owl, reading by candlelight").json["id"]
    both = submit(client, prompt="Red owl and red fox").json["id"]
    def ids(query):
        return [j["id"] for j in client.get("/api/v1/jobs", query_string={"q": query}).json["jobs"]]

    assert ids("fox") == [both, fox]
    assert ids("RED fox") == [both, fox]
    assert ids("owl red") == [both]
    assert ids("candle") == [owl]
    assert ids("zebra") == []
    assert ids('"); DROP TABLE jobs; --') == []
    assert ids("*") == []  # no words: matched as typed, and no prompt holds a "*"
    assert len(ids("")) == 3


def test_a_query_with_no_words_matches_only_the_prompts_that_contain_it(client):
    """An emoji or punctuation alone is looked for as typed, never dropped as "no filter"."""
    fox = submit(client, prompt="a fox 🦊 in the snow").json["id"]
    percent = submit(client, prompt="100% owl_ish!").json["id"]
    submit(client, prompt="a plain lighthouse")

    def ids(query):
        return [j["id"] for j in client.get("/api/v1/jobs", query_string={"q": query}).json["jobs"]]

    assert ids("🦊") == [fox]
    assert ids(" 🦊 ") == [fox]
    assert ids("%") == [percent]  # LIKE's wildcards match themselves
    assert ids("_") == [percent]
    assert ids("!") == [percent]
    assert ids("🐙") == []
    assert ids("?!") == []


def test_search_pages_with_a_cursor(client):
    ids = [submit(client, prompt=f"lighthouse number {i}").json["id"] for i in range(5)]
    submit(client, prompt="something else")
    first = client.get("/api/v1/jobs?q=lighthouse&limit=2").json
    second = client.get(f"/api/v1/jobs?q=lighthouse&limit=2&cursor={first['next_cursor']}").json
    third = client.get(f"/api/v1/jobs?q=lighthouse&limit=2&cursor={second['next_cursor']}").json
    got = [j["id"] for page in (first, second, third) for j in page["jobs"]]
    assert got == ids[::-1] and third["next_cursor"] is None


def test_rerun_with_new_same_and_explicit_seed(client):
    parent = submit(client, seed=11, grid=2, temperature=0.5, top_k=7).json
    new = client.post(f"/api/v1/jobs/{parent['id']}/rerun").json
    same = client.post(f"/api/v1/jobs/{parent['id']}/rerun", json={"seed": "same"}).json
    explicit = client.post(f"/api/v1/jobs/{parent['id']}/rerun", json={"seed": 99}).json
    for child in (new, same, explicit):
        assert child["parent_id"] == parent["id"] and child["status"] == "queued"
        assert child["prompt"] == parent["prompt"] and child["grid"] == 2
        assert child["params"] == parent["params"]
    assert same["seed"] == 11 and explicit["seed"] == 99
    assert new["seed"] != 11 or client.post(f"/api/v1/jobs/{parent['id']}/rerun").json["seed"] != 11


def test_rerun_with_edited_prompt_grid_and_params(client):
    parent = submit(client, seed=3).json
    response = client.post(
        f"/api/v1/jobs/{parent['id']}/rerun",
        json={"seed": "same", "prompt": " a blue fox ", "grid": 1, "top_k": 5, "model": "mega"},
    )
    assert response.status_code == 201
    child = response.json
    assert (child["prompt"], child["grid"], child["seed"], child["model"]) == (
        "a blue fox", 1, 3, "mega")
    assert child["params"]["top_k"] == 5 and child["params"]["temperature"] == 1.0


@pytest.mark.parametrize("body, code", [
    ({"seed": "again"}, "invalid_seed"), ({"seed": -5}, "invalid_seed"),
    ({"prompt": "x" * 501}, "invalid_prompt"), ({"grid": 9}, "invalid_grid"),
    ({"seed": HUGE_INTEGER}, "invalid_seed"),
    ({"temperature": HUGE_INTEGER}, "invalid_temperature"),
    ({"top_p": HUGE_INTEGER}, "invalid_top_p"),
    ({"condition_scale": HUGE_INTEGER}, "invalid_condition_scale"),
])
def test_bad_reruns_get_400(client, body, code):
    parent = submit(client).json
    response = client.post(f"/api/v1/jobs/{parent['id']}/rerun", json=body)
    assert response.status_code == 400 and response.json["error"]["code"] == code


def test_cancel_a_queued_job(client, worker):
    job = submit(client).json
    response = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    assert response.json["status"] == "canceled" and response.json["finished_at"]
    assert worker.claim().status_code == 204  # a canceled job is never claimed
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json["error"]["code"] == "already_finished"


def test_cancel_a_running_job_stops_it_at_the_next_heartbeat(client, worker):
    submit(client)
    job, lease = worker.claim_one()
    response = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200 and response.json["status"] == "running"
    assert worker.heartbeat(job["id"], lease).json["cancel_requested"] is True
    stopped = worker.fail(job["id"], lease, "canceled by user", retryable=True).json
    assert stopped["status"] == "canceled"


def test_delete_removes_the_job_and_its_files(client, worker, settings, tmp_path):
    submit(client, grid=1)
    job, lease = worker.claim_one()
    done = worker.post_result(job["id"], lease, 1).json
    files = list((tmp_path / "data" / "jobs").iterdir())
    with client.get(done["grid_url"]) as grid:
        assert len(files) == 1 and grid.status_code == 200
    response = client.delete(f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert client.get(done["grid_url"]).status_code == 404
    assert list((tmp_path / "data" / "jobs").iterdir()) == []
    assert client.delete(f"/api/v1/jobs/{job['id']}").status_code == 404


def test_password_protects_the_people_api_even_from_localhost(settings):
    client = create_app(settings.replace(password="hunter2")).test_client()
    for response in (
        client.get("/api/v1/jobs", environ_base={"REMOTE_ADDR": "127.0.0.1"}),
        client.post("/api/v1/jobs", json={"prompt": "x"}),
        client.get("/api/v1/jobs/any"),
    ):
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"


def test_api_writes_from_another_site_are_refused(client):
    response = client.post(
        "/api/v1/jobs", json={"prompt": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403 and response.json["error"]["code"] == "csrf"
    response = client.post(
        "/api/v1/jobs", json={"prompt": "x"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403
    same_site = client.post(
        "/api/v1/jobs", json={"prompt": "x"}, headers={"Origin": "http://localhost"}
    )
    assert same_site.status_code == 201
    assert len(client.get("/api/v1/jobs").json["jobs"]) == 1


def test_browser_session_api_writes_need_the_csrf_header(client):
    with client.session_transaction() as session:
        session["csrf_token"] = "the-token"
    refused = client.post("/api/v1/jobs", json={"prompt": "x"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "csrf"
    wrong = client.post("/api/v1/jobs", json={"prompt": "x"}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    accepted = client.post(
        "/api/v1/jobs", json={"prompt": "x"}, headers={"X-CSRF-Token": "the-token"}
    )
    assert accepted.status_code == 201
