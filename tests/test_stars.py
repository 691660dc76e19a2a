"""Stars and families (issue 18): `starred` in the API, the starred filter on every list path
(plain, by status, searched, paged), and a job's family as the catalog reads it."""

import pytest
import requests

from server.catalog import Catalog
from server.errors import NotFound
from server.validation import DEFAULT_PARAMS

HTTP_TIMEOUT_SECONDS = 10


def fields(prompt="a fox", seed=1):
    return dict(DEFAULT_PARAMS, prompt=prompt, model="mini", grid=1, seed=seed)


def listed(client, query: str) -> list[str]:
    response = client.get(f"/api/v1/jobs?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [job["prompt"] for job in response.json["jobs"]]


def test_over_http_a_star_answers_the_job_and_starred_true_lists_only_starred(live_server):
    url = live_server.url
    ids = [
        requests.post(f"{url}/api/v1/jobs", json={"prompt": f"fox {i}"}, timeout=10).json()["id"]
        for i in range(3)
    ]
    response = requests.post(
        f"{url}/api/v1/jobs/{ids[1]}/star", json={"starred": True}, timeout=HTTP_TIMEOUT_SECONDS
    )
    assert response.status_code == 200
    assert response.json()["id"] == ids[1] and response.json()["starred"] is True
    listing = requests.get(f"{url}/api/v1/jobs?starred=true", timeout=HTTP_TIMEOUT_SECONDS)
    assert listing.status_code == 200
    assert [job["id"] for job in listing.json()["jobs"]] == [ids[1]]
    everything = requests.get(f"{url}/api/v1/jobs", timeout=HTTP_TIMEOUT_SECONDS).json()["jobs"]
    assert [job["starred"] for job in everything] == [False, True, False]


def test_unstar_and_starred_false_lists_the_others(client):
    ids = [client.post("/api/v1/jobs", json={"prompt": f"owl {i}"}).json["id"] for i in range(3)]
    for job_id in ids[:2]:
        assert client.post(f"/api/v1/jobs/{job_id}/star", json={"starred": True}).json["starred"]
    unstarred = client.post(f"/api/v1/jobs/{ids[0]}/star", json={"starred": False})
    assert unstarred.status_code == 200 and unstarred.json["starred"] is False
    assert listed(client, "starred=true") == ["owl 1"]
    assert listed(client, "starred=false") == ["owl 2", "owl 0"]
    assert client.get(f"/api/v1/jobs/{ids[1]}").json["starred"] is True


def test_a_starred_queued_job_keeps_its_place_in_line(client):
    first = client.post("/api/v1/jobs", json={"prompt": "first"}).json
    second = client.post("/api/v1/jobs", json={"prompt": "second"}).json
    starred = client.post(f"/api/v1/jobs/{second['id']}/star", json={"starred": True}).json
    assert starred["position"] == 2 and first["position"] == 1


def test_the_starred_filter_combines_with_status_search_and_cursor(client, worker):
    for prompt in ("red fox", "red owl", "red fox cub", "blue fox"):
        job_id = client.post("/api/v1/jobs", json={"prompt": prompt, "grid": 1}).json["id"]
        client.post(f"/api/v1/jobs/{job_id}/star", json={"starred": "owl" not in prompt})
    done, lease = worker.claim_one()  # the oldest, "red fox"
    assert worker.post_result(done["id"], lease, 1).status_code == 200
    assert listed(client, "starred=true&status=done") == ["red fox"]
    assert listed(client, "starred=true&status=queued,done") == [
        "blue fox", "red fox cub", "red fox"]
    assert listed(client, "starred=true&q=red") == ["red fox cub", "red fox"]
    assert listed(client, "starred=false&q=red") == ["red owl"]
    assert listed(client, "starred=true&q=fox&status=queued") == ["blue fox", "red fox cub"]
    first = client.get("/api/v1/jobs?starred=true&q=fox&limit=2").json
    assert [job["prompt"] for job in first["jobs"]] == ["blue fox", "red fox cub"]
    rest = listed(client, f"starred=true&q=fox&limit=2&cursor={first['next_cursor']}")
    assert rest == ["red fox"]
    rest = listed(client, f"starred=true&limit=2&cursor={first['next_cursor']}")
    assert rest == ["red fox"]


@pytest.mark.parametrize("value", ["1", "yes", "True", "", "truee"])
def test_a_starred_filter_that_is_not_true_or_false_is_a_400(client, value):
    response = client.get(f"/api/v1/jobs?starred={value}")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_starred"
    assert "true or false" in response.json["error"]["message"]


@pytest.mark.parametrize("body", [{}, {"starred": None}, {"starred": 1}, {"starred": "true"}])
def test_a_star_without_a_json_boolean_is_a_400(client, body):
    job_id = client.post("/api/v1/jobs", json={"prompt": "a fox"}).json["id"]
    response = client.post(f"/api/v1/jobs/{job_id}/star", json=body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_starred"


def test_starring_an_unknown_job_is_a_404(client):
    response = client.post("/api/v1/jobs/nope/star", json={"starred": True})
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_stars_and_the_starred_filter_on_every_backend(queue):
    catalog = Catalog(queue.engine)
    ids = [queue.submit(fields(prompt=f"red fox {i}"))["id"] for i in range(4)]
    assert queue.set_starred(ids[2], True)["starred"] is True
    queue.set_starred(ids[0], True)
    rows, cursor = catalog.page(starred=True, limit=1)
    more, last = catalog.page(starred=True, limit=1, cursor=cursor)
    assert [rows[0]["id"], more[0]["id"], last] == [ids[2], ids[0], None]
    rows, _ = catalog.page(starred=True, query="fox", statuses=["queued"], limit=10)
    assert [row["id"] for row in rows] == [ids[2], ids[0]]
    rows, _ = catalog.page(starred=False, limit=10)
    assert [row["id"] for row in rows] == [ids[3], ids[1]]
    with pytest.raises(NotFound):
        queue.set_starred("nope", True)


def test_a_family_is_the_parent_its_reruns_and_the_jobs_own_reruns(queue):
    catalog = Catalog(queue.engine)
    parent = queue.submit(fields(prompt="a fox"))
    child = queue.submit(fields(seed=2), parent_id=parent["id"])
    sibling = queue.submit(fields(seed=3), parent_id=parent["id"])
    grandchild = queue.submit(fields(seed=4), parent_id=child["id"])
    stranger = queue.submit(fields(seed=5))
    family = [job["id"] for job in catalog.family(catalog.get(child["id"]))]
    assert family == [parent["id"], child["id"], sibling["id"], grandchild["id"]]
    family = [job["id"] for job in catalog.family(catalog.get(parent["id"]))]
    assert family == [parent["id"], child["id"], sibling["id"]]
    assert [job["id"] for job in catalog.family(catalog.get(stranger["id"]))] == [stranger["id"]]


def test_get_many_keeps_the_order_asked_and_names_an_unknown_id(queue):
    catalog = Catalog(queue.engine)
    ids = [queue.submit(fields(seed=seed))["id"] for seed in (1, 2)]
    assert [job["id"] for job in catalog.get_many(ids[::-1])] == ids[::-1]
    with pytest.raises(NotFound, match="no job ghost"):
        catalog.get_many([ids[0], "ghost"])
