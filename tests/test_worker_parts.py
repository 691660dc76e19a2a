"""The worker's small parts on their own: backoff, the spool, job fingerprints, the HTTP client."""

import random
from datetime import datetime, timezone

import pytest

from tests.conftest import WORKER_TOKEN
from worker import defaults, jobs
from worker.backoff import Backoff
from worker.client import Claim, QueueClient
from worker.errors import LeaseLost, Rejected, ServerUnavailable, Unauthorized
from worker.spool import Spool
from worker.stopping import StopRequests

JOB = {"id": "abc", "prompt": "a fox", "seed": 7, "grid": 2, "model": "tiny",
       "params": {"temperature": 1.0, "top_k": 50, "top_p": None, "condition_scale": 10.0}}


def claim_of(job=JOB, lease="lease-1") -> Claim:
    return Claim(dict(job), lease, datetime(2030, 1, 1, tzinfo=timezone.utc))


def test_backoff_doubles_to_its_cap_with_jitter_and_resets():
    backoff = Backoff(first_seconds=1.0, max_seconds=8.0, rng=random.Random(3))
    waits = [backoff.next_seconds() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    for wait, ceiling in zip(waits, ceilings):
        assert ceiling / 2 <= wait <= ceiling
    assert len({round(wait, 6) for wait in waits[3:]}) == 3  # jittered, not all equal
    backoff.reset()
    assert backoff.next_seconds() <= 1.0


def test_spool_keeps_a_result_until_removed_and_reuses_an_orphan_only_for_the_same_job(tmp_path):
    spool = Spool(tmp_path / "spool")
    tiles = [b"tile-%d" % i for i in range(4)]
    entry = spool.save(claim_of(), jobs.fingerprint(JOB), b"grid", tiles, {"seconds": 1.5})
    assert not list((tmp_path / "spool").glob(".*"))  # no scratch folder left behind

    reopened = Spool(tmp_path / "spool").pending()  # as a restarted worker sees it
    assert [e.job_id for e in reopened] == ["abc"]
    assert reopened[0].tile_pngs() == tiles and reopened[0].grid_png() == b"grid"
    assert reopened[0].lease == "lease-1" and reopened[0].meta == {"seconds": 1.5}

    spool.orphan(entry)
    assert spool.pending() == []
    changed = dict(JOB, seed=8)
    assert spool.orphan_for(claim_of(changed, "lease-2"), jobs.fingerprint(changed)) is None
    reused = spool.orphan_for(claim_of(JOB, "lease-2"), jobs.fingerprint(JOB))
    assert reused is not None and reused.lease == "lease-2" and not reused.is_orphan
    assert [e.lease for e in spool.pending()] == ["lease-2"]

    spool.orphan(reused)
    assert spool.prune_orphans(keep_seconds=60) == 0
    assert spool.prune_orphans(keep_seconds=60, now_seconds=4_102_444_800) == 1
    assert not any((tmp_path / "spool").iterdir())


def test_fingerprint_names_everything_the_images_depend_on():
    base = jobs.fingerprint(JOB)
    assert jobs.fingerprint(dict(JOB, id="other")) == base  # the id is not the work
    for change in ({"prompt": "a cat"}, {"seed": 8}, {"grid": 3}, {"model": "mini"},
                   {"params": dict(JOB["params"], top_k=5)}):
        assert jobs.fingerprint(dict(JOB, **change)) != base


def test_client_maps_each_answer_to_its_error(live_server):
    client = QueueClient(live_server.url, WORKER_TOKEN)
    with pytest.raises(Unauthorized):
        QueueClient(live_server.url, "wrong").claim("w", ["tiny"], 1, 0)
    assert client.claim("w", ["tiny"], 1, 0) == []
    job = client.session.post(f"{live_server.url}/api/v1/jobs",
                              json={"prompt": "a fox", "model": "tiny"}).json()
    (held,) = client.claim("w", ["tiny"], 4, 0)
    assert held.job_id == job["id"] and held.lease_expires_at > datetime.now(timezone.utc)
    beat = client.heartbeat(held.job_id, held.lease, 0.5)
    assert not beat.is_cancel_requested
    with pytest.raises(LeaseLost):
        client.heartbeat(held.job_id, "not-the-lease", 0.5)
    with pytest.raises(Rejected):
        client.post_result(held.job_id, held.lease, b"not a png", [], {})
    with pytest.raises(ServerUnavailable):
        QueueClient("http://127.0.0.1:9", WORKER_TOKEN, timeout_seconds=2).claim("w", [], 1, 0)
    client.close()


def test_once_gives_up_at_once_when_the_server_is_unreachable(tmp_path):
    pytest.importorskip("jax")
    from worker.runner import ModelInfo, Worker, WorkerOptions

    options = WorkerOptions(server_url="http://127.0.0.1:9", token=WORKER_TOKEN, name="w",
                            model_name="tiny", spool_dir=tmp_path / "spool", is_once=True)
    worker = Worker(options, pipeline=None, model=ModelInfo("tiny", "fp32", "cpu", True))
    assert worker.run() == 1


class RecordedStop(StopRequests):
    """Stop requests whose sleeps are recorded instead of slept."""

    def __init__(self):
        super().__init__()
        self.slept = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class EmptyClaims:
    """A queue client whose claims come back empty at once, as past a server's long-poll cap,
    or as a poll cut short by a stop (`stop` is then requested during the claim)."""

    def __init__(self, stop: StopRequests | None = None):
        self.stop = stop

    def claim(self, *_args):
        if self.stop is not None:
            self.stop.request("a stop during the poll")
        return []

    def close(self):
        pass


@pytest.mark.parametrize("wait_seconds, is_stopped_meanwhile, slept", [
    (25.0, False, [defaults.UNHELD_POLL_PAUSE_SECONDS]),  # an empty poll answered at once: pause
    (0.0, False, []),  # a plain claim asks for no wait
    (25.0, True, []),  # a stop ended the poll: the worker goes on to exit, not to pause
])
def test_a_long_poll_the_server_did_not_hold_is_followed_by_a_pause(
        tmp_path, wait_seconds, is_stopped_meanwhile, slept):
    pytest.importorskip("jax")
    from worker.runner import ModelInfo, Worker, WorkerOptions

    stop = RecordedStop()
    options = WorkerOptions("http://127.0.0.1:9", "t", "w", "tiny", tmp_path / "spool",
                            claim_wait_seconds=wait_seconds)
    worker = Worker(options, None, ModelInfo("tiny", "float32", "cpu", True), stop=stop,
                    make_client=lambda: EmptyClaims(stop if is_stopped_meanwhile else None))
    assert worker.claim_batch() == []
    assert stop.slept == slept
