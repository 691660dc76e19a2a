"""CLIP scores in a result's meta (shared/API-1.1.md): checked, stored, served as `scores` and
`best_image`, and shown best first (issue 17, "CLIP ranking")."""

import io
import json
import re

import pytest
from PIL import Image

from server import ranking
from tests.helpers import TILE, png_bytes

TILE_COLORS = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0)]  # one per tile of a 2x2


def post_result(client, worker, job_id, lease, meta, grid=2):
    files = {"grid": (io.BytesIO(png_bytes(TILE * grid)), "grid.png")}
    for index in range(grid * grid):
        files[f"image_{index}"] = (io.BytesIO(png_bytes(TILE, TILE_COLORS[index])), "t.png")
    data = {"lease": lease, **files}
    if meta is not None:
        data["meta"] = meta if isinstance(meta, str) else json.dumps(meta)
    return client.post(f"/api/v1/worker/jobs/{job_id}/result", data=data,
                       headers=worker.headers, content_type="multipart/form-data")


def claimed_job(client, worker, grid=2):
    assert client.post("/api/v1/jobs", json={"prompt": "a fox", "grid": grid}).status_code == 201
    return worker.claim_one()


def test_scores_are_stored_and_returned_with_the_best_image(client, worker):
    job, lease = claimed_job(client, worker)
    response = post_result(client, worker, job["id"], lease, {"scores": [0.5, 31, 28.25, 31]})
    assert response.status_code == 200
    for done in (response.json, client.get(f"/api/v1/jobs/{job['id']}").json,
                 client.get("/api/v1/jobs").json["jobs"][0]):
        assert done["scores"] == [0.5, 31.0, 28.25, 31.0]
        assert done["best_image"] == 1  # the first of equal highest scores
        assert len(done["image_urls"]) == 4  # tiles keep their index order


@pytest.mark.parametrize("meta", [None, {"seconds": 1.0}])
def test_a_result_without_scores_has_none(client, worker, meta):
    job, lease = claimed_job(client, worker)
    done = post_result(client, worker, job["id"], lease, meta).json
    assert done["status"] == "done" and done["scores"] is None and done["best_image"] is None
    queued = client.post("/api/v1/jobs", json={"prompt": "waiting"}).json
    assert queued["scores"] is None and queued["best_image"] is None


@pytest.mark.parametrize("scores, message", [
    ([1.0, 2.0, 3.0], "one score per image: 4, not 3"),
    ([1.0, 2.0, 3.0, 4.0, 5.0], "one score per image: 4, not 5"),
    ([1.0, 2.0, "3", 4.0], "list of finite numbers"),
    ([1.0, 2.0, True, 4.0], "list of finite numbers"),
    ([1.0, 2.0, None, 4.0], "list of finite numbers"),
    ([1.0, 2.0, [3.0], 4.0], "list of finite numbers"),
    ({"0": 1.0}, "list of finite numbers"),
    (3.0, "list of finite numbers"),
    pytest.param("1e400", "list of finite numbers", id="infinity"),
    pytest.param("1" + "0" * 400, "list of finite numbers", id="too-large-for-a-float"),
])
def test_bad_scores_are_400_and_change_nothing(client, worker, scores, message):
    job, lease = claimed_job(client, worker)
    if isinstance(scores, str):  # a raw JSON number
        meta = f'{{"scores": [{scores}, 1, 2, 3]}}'
    else:
        meta = {"scores": scores}
    response = post_result(client, worker, job["id"], lease, meta)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_meta"
    assert message in response.json["error"]["message"]
    assert client.get(f"/api/v1/jobs/{job['id']}").json["status"] == "running"


def test_the_gallery_thumbnail_is_the_best_tile(client, worker):
    job, lease = claimed_job(client, worker)
    done = post_result(client, worker, job["id"], lease, {"scores": [1.0, 2.0, 9.5, 3.0]}).json
    with client.get(done["thumb_url"]) as thumb:
        image = Image.open(io.BytesIO(thumb.data)).convert("RGB")
    red, green, blue = image.getpixel((image.width // 2, image.height // 2))
    assert blue > 200 and red < 50 and green < 50  # tile 2 is blue; the grid PNG is red
    with client.get(done["grid_url"]) as grid:  # the grid keeps its own pixels
        assert Image.open(io.BytesIO(grid.data)).convert("RGB").getpixel((0, 0)) == (200, 30, 30)


def test_the_openapi_job_has_scores_and_best_image(client):
    job = client.get("/api/v1/openapi.json").json["components"]["schemas"]["Job"]
    assert {"scores", "best_image"} <= set(job["properties"])


def test_stored_meta_with_scores_that_do_not_fit_reads_as_unranked():
    assert ranking.scores_from_meta({"scores": [1.0, 2.0]}, 4) is None
    assert ranking.scores_from_meta({"scores": [1.0, float("nan"), 2.0, 3.0]}, 4) is None
    assert ranking.scores_from_meta({"scores": "high"}, 4) is None
    assert ranking.scores_from_meta(None, 4) is None
    assert ranking.best_first([1.0, 3.0, 2.0, 3.0], 4) == [1, 3, 2, 0]
    assert ranking.best_first(None, 4) == [0, 1, 2, 3]


def test_the_job_page_of_a_ranked_job_shows_the_best_tile_first_with_its_score(client, worker):
    job, lease = claimed_job(client, worker)
    post_result(client, worker, job["id"], lease, {"scores": [1.0, 2.5, 9.75, 3.0]})
    html = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    tiles = re.findall(r'<a class="tile[^"]*" href="[^"]*" data-index="(\d)" data-score="([^"]*)"',
                       html)
    assert tiles == [("2", "9.75"), ("3", "3.00"), ("1", "2.50"), ("0", "1.00")]
    assert 'class="tiles ranked"' in html


def test_the_job_page_of_an_unranked_job_keeps_index_order(client, worker):
    job, lease = claimed_job(client, worker)
    post_result(client, worker, job["id"], lease, {"seconds": 2.0})
    html = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert re.findall(r'<a class="tile" href="[^"]*" data-index="(\d)">', html) == list("0123")
    assert "ranked" not in html and "data-score" not in html
