"""The queue's verbs on every backend: SQLite always, PostgreSQL when DALLEQ_TEST_POSTGRES_URL is set.

After huey's StorageTests: the same tests, parametrised by the `database_url` fixture.
"""

import json
import multiprocessing
import threading
from datetime import timedelta

import pytest

from server import db
from server.catalog import Catalog
from server.clock import utcnow
from server.config import Settings
from server.errors import Conflict, NotFound, StaleLease
from server.queue import JobQueue, Upload
from server.storage import Storage
from server.validation import DEFAULT_PARAMS
from tests.helpers import TILE, png_bytes

PROCESS_COUNT = 4
JOB_COUNT = 120


def fields(prompt="a fox", model="mini", grid=1, seed=1):
    return dict(DEFAULT_PARAMS, prompt=prompt, model=model, grid=grid, seed=seed)


@pytest.fixture
def queue(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield JobQueue(engine, Settings(database_url=database_url, max_attempts=2))
    engine.dispose()


def test_submit_claim_finish(queue):
    job = queue.submit(fields())
    (claimed,) = queue.claim("w", ["mini"], 5)
    assert claimed["id"] == job["id"] and claimed["status"] == "running"
    done, changed = queue.finish(job["id"], claimed["lease"], "dir", [], {"s": 1})
    assert changed and done["status"] == "done" and done["files_dir"] == "dir"
    again, changed = queue.finish(job["id"], claimed["lease"], "other", [], None)
    assert not changed and again["files_dir"] == "dir"
    with pytest.raises(StaleLease):
        queue.finish(job["id"], "someone else", "x", [], None)


def test_claim_respects_order_models_and_limit(queue):
    ids = [queue.submit(fields(model="mega" if i == 1 else "mini"))["id"] for i in range(4)]
    claimed = queue.claim("w", ["mini"], 2)
    assert [job["id"] for job in claimed] == [ids[0], ids[2]]
    assert [job["id"] for job in queue.claim("w", ["mini", "mega"], 9)] == [ids[1], ids[3]]
    assert queue.claim("w", ["mini", "mega"], 9) == []


def test_expiry_requeues_then_fails(queue):
    job = queue.submit(fields())
    later = utcnow()
    for attempt in (1, 2):
        (claimed,) = queue.claim("w", ["mini"], 1, now=later)
        later += timedelta(seconds=Settings().lease_seconds + 1)
        assert queue.expire(now=later) == 1
        with pytest.raises(StaleLease):
            queue.heartbeat(job["id"], claimed["lease"], 0.5, now=later)
    assert Catalog(queue.engine).get(job["id"])["status"] == "failed"


def test_fail_cancel_delete(queue):
    job = queue.submit(fields())
    (claimed,) = queue.claim("w", ["mini"], 1)
    assert queue.fail(job["id"], claimed["lease"], "oops", True)["status"] == "queued"
    assert queue.cancel(job["id"])["status"] == "canceled"
    with pytest.raises(Conflict):
        queue.cancel(job["id"])
    queue.delete(job["id"])
    with pytest.raises(NotFound):
        queue.delete(job["id"])


def test_claim_waiting_wakes_for_a_submit_and_gives_up_after_its_wait(queue):
    assert queue.claim_waiting("w", ["mini"], 1, wait_seconds=0.05) == []
    submitter = threading.Timer(0.2, queue.submit, args=(fields(prompt="late"),))
    submitter.start()
    (claimed,) = queue.claim_waiting("w", ["mini"], 1, wait_seconds=10)
    submitter.join()
    assert claimed["prompt"] == "late" and claimed["status"] == "running"


def test_post_result_checks_the_lease_before_reading_or_storing(queue, tmp_path):
    storage = Storage(tmp_path)
    job = queue.submit(fields())
    (claimed,) = queue.claim("w", ["mini"], 1)

    def unread(_job):
        raise AssertionError("the upload was read")

    with pytest.raises(StaleLease):
        queue.post_result(job["id"], "someone else", unread, storage)
    with pytest.raises(NotFound):
        queue.post_result("no-such-job", claimed["lease"], unread, storage)
    upload = Upload(png_bytes(TILE), [png_bytes(TILE)], [(TILE, TILE)] * 2, {"seconds": 1.5})
    done = queue.post_result(job["id"], claimed["lease"], lambda _job: upload, storage)
    assert done["status"] == "done" and json.loads(done["result_meta"]) == {"seconds": 1.5}
    assert sorted(path.name for path in storage.folder(done["files_dir"]).iterdir()) == [
        "grid.png", "thumb.webp", "tile_0.png",
    ]  # fmt: skip
    again = queue.post_result(job["id"], claimed["lease"], unread, storage)
    assert again["files_dir"] == done["files_dir"]
    assert [path.name for path in storage.root.iterdir()] == [done["files_dir"]]


def test_a_lease_past_its_expiry_is_dead_on_every_call_before_expire_runs(queue, tmp_path):
    storage = Storage(tmp_path)
    job = queue.submit(fields())
    (claimed,) = queue.claim("w", ["mini"], 1)
    lease = claimed["lease"]
    later = claimed["lease_expires_at"] + timedelta(seconds=1)  # no claim or expire() since

    def unread(_job):
        raise AssertionError("the upload was read")

    with pytest.raises(StaleLease, match="expired"):
        queue.heartbeat(job["id"], lease, 0.5, now=later)
    with pytest.raises(StaleLease, match="expired"):
        queue.fail(job["id"], lease, "late", True, now=later)
    with pytest.raises(StaleLease, match="expired"):
        queue.finish(job["id"], lease, "dir", [], None, now=later)
    with pytest.raises(StaleLease, match="expired"):
        queue.post_result(job["id"], lease, unread, storage, now=later)
    row = Catalog(queue.engine).get(job["id"])
    assert row["status"] == "running" and row["lease_expires_at"] == claimed["lease_expires_at"]
    assert row["files_dir"] is None and not any(storage.root.glob("*"))
    assert queue.expire(now=later) == 1  # still handed back as any expired lease is
    assert Catalog(queue.engine).get(job["id"])["status"] == "queued"


def test_a_heartbeat_at_the_last_moment_of_its_lease_still_extends_it(queue):
    queue.submit(fields())
    (claimed,) = queue.claim("w", ["mini"], 1)
    beat = queue.heartbeat(claimed["id"], claimed["lease"], 0.5, now=claimed["lease_expires_at"])
    assert beat["lease_expires_at"] > claimed["lease_expires_at"]


def _upload():
    return Upload(png_bytes(TILE), [png_bytes(TILE)], [(TILE, TILE)] * 2, {"seconds": 1.5})


def test_a_cancel_asked_before_the_result_wins(queue, tmp_path):
    storage = Storage(tmp_path)
    job = queue.submit(fields())
    (claimed,) = queue.claim("w", ["mini"], 1)
    assert queue.cancel(job["id"])["cancel_requested"]
    ended = queue.post_result(job["id"], claimed["lease"], lambda _job: _upload(), storage)
    assert ended["status"] == "canceled" and ended["finished_at"]
    assert ended["files_dir"] is None and ended["result_meta"] is None
    assert Catalog(queue.engine).images(ended["seq"]) == []
    assert not any(storage.root.glob("*"))
    again = queue.post_result(job["id"], claimed["lease"], lambda _job: _upload(), storage)
    assert again == ended and not any(storage.root.glob("*"))  # a repeat changes nothing
    with pytest.raises(Conflict):
        queue.cancel(job["id"])


def test_a_cancel_arriving_while_the_result_is_read_wins_too(queue, tmp_path):
    storage = Storage(tmp_path)
    job = queue.submit(fields())
    (claimed,) = queue.claim("w", ["mini"], 1)

    def read_while_canceled(_job):
        queue.cancel(job["id"])  # a person's cancel lands between the lease check and the commit
        return _upload()

    ended = queue.post_result(job["id"], claimed["lease"], read_while_canceled, storage)
    assert ended["status"] == "canceled" and ended["files_dir"] is None
    assert Catalog(queue.engine).images(ended["seq"]) == []
    assert not any(storage.root.glob("*"))  # the files written for it are removed


def test_search_and_pages(queue):
    catalog = Catalog(queue.engine)
    for prompt in ("red fox", "blue fox", "red owl", "green tree"):
        queue.submit(fields(prompt=prompt))
    rows, cursor = catalog.page(query="fo red", limit=10)
    assert [row["prompt"] for row in rows] == ["red fox"] and cursor is None
    rows, cursor = catalog.page(query="fox", limit=1)
    more, last = catalog.page(query="fox", limit=1, cursor=cursor)
    assert [rows[0]["prompt"], more[0]["prompt"]] == ["blue fox", "red fox"] and last is None


def test_a_search_with_no_words_matches_the_text_as_typed(queue):
    catalog = Catalog(queue.engine)
    for prompt in ("fox 🦊", "50% off_white", "plain owl", "a/b"):
        queue.submit(fields(prompt=prompt))

    def prompts(query):
        return [row["prompt"] for row in catalog.page(query=query, limit=10)[0]]

    assert prompts("🦊") == ["fox 🦊"]
    assert prompts("%") == ["50% off_white"]
    assert prompts("_") == ["50% off_white"]
    assert prompts("/") == ["a/b"]
    assert prompts("?") == []
    rows, cursor = catalog.page(query="🦊", statuses=["queued"], limit=1)
    assert [row["prompt"] for row in rows] == ["fox 🦊"] and cursor is None


def _claim_until_empty(database_url, worker_name, result_queue):
    engine = db.make_engine(database_url)
    queue = JobQueue(engine, Settings(database_url=database_url))
    claimed_ids = []
    empty_rounds = 0
    while empty_rounds < 3:
        batch = queue.claim(worker_name, ["mini"], 2)
        empty_rounds = 0 if batch else empty_rounds + 1
        for job in batch:
            claimed_ids.append(job["id"])
            queue.finish(job["id"], job["lease"], f"dir-{worker_name}", [], None)
    engine.dispose()
    result_queue.put(claimed_ids)


def test_several_processes_claiming_at_once_never_share_or_lose_a_job(queue, database_url):
    submitted = {queue.submit(fields(prompt=f"job {i}"))["id"] for i in range(JOB_COUNT)}
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=_claim_until_empty, args=(database_url, f"w{i}", results))
        for i in range(PROCESS_COUNT)
    ]
    for process in processes:
        process.start()
    claimed = [job_id for _ in processes for job_id in results.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert set(claimed) == submitted, "a job was lost"
    rows, _ = Catalog(queue.engine).page(limit=100, statuses=["done"])
    assert len(rows) == 100


def test_position_counts_only_the_queued_jobs_of_the_same_model(queue):
    """Workers claim by model, so a `mega` job behind two `mini` jobs is next for its model."""
    catalog = Catalog(queue.engine)
    first_mini = queue.submit(fields(model="mini"))
    second_mini = queue.submit(fields(model="mini"))
    mega = queue.submit(fields(model="mega"))
    third_mini = queue.submit(fields(model="mini"))
    assert [first_mini["position"], second_mini["position"], mega["position"]] == [1, 2, 1]
    assert third_mini["position"] == 3
    rows, _ = catalog.page(statuses=["queued"], limit=10)
    position_from_id = {row["id"]: row["position"] for row in rows}
    assert position_from_id == {
        first_mini["id"]: 1, second_mini["id"]: 2, mega["id"]: 1, third_mini["id"]: 3
    }
    assert catalog.get(mega["id"])["position"] == 1
    queue.claim("w", ["mini"], 1)
    assert catalog.get(third_mini["id"])["position"] == 2
    assert catalog.get(mega["id"])["position"] == 1


def test_a_claim_records_a_sighting_of_each_model_asked_for(queue):
    from server.sightings import served_models

    now = utcnow()
    nobody = served_models(queue.engine, now=now)
    assert not nobody.any_worker_seen
    assert nobody.warning("mega") == (
        "No worker has asked this server for jobs yet, so model 'mega' has none."
    )
    queue.claim_waiting("w1", ["mini", "tiny"], now=now)
    queue.claim_waiting("w1", ["mini"], now=now + timedelta(minutes=8))  # an upsert, not a 2nd row
    seen = served_models(queue.engine, now=now + timedelta(minutes=9))
    assert seen.models == {"mini", "tiny"} and seen.warning("mini") is None
    assert seen.warning("mega") == "No worker has asked for model 'mega' in the last 10 minutes."
    later = served_models(queue.engine, now=now + timedelta(minutes=15))
    assert later.models == {"mini"} and later.any_worker_seen
    assert later.warning("tiny") == "No worker has asked for model 'tiny' in the last 10 minutes."
