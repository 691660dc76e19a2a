"""A finished job's files survive a power cut (they are on disk before the job says `done`), and
folders no job points to do not pile up in the data dir."""

import os
import time

from server.defaults import ORPHAN_MIN_AGE_SECONDS
from server.orphans import OrphanSweeper
from tests.helpers import ServerProcess, wait_for
from tests.test_worker_api import queue_of, submit


def test_every_result_file_and_its_folder_are_fsynced_before_the_job_is_done(
        app, client, worker, monkeypatch):
    events = []  # ("fsync", (device, inode)) and ("done", job id), in the order they happened
    real_fsync = os.fsync

    def recording_fsync(descriptor):
        status = os.fstat(descriptor)
        events.append(("fsync", (status.st_dev, status.st_ino)))
        return real_fsync(descriptor)

    queue = queue_of(app)
    real_finish = queue.finish

    def recording_finish(job_id, *args, **kwargs):
        finished = real_finish(job_id, *args, **kwargs)  # commits the row as done
        events.append(("done", job_id))
        return finished

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(queue, "finish", recording_finish)
    job = submit(client, grid=2)
    claimed, lease = worker.claim_one()
    assert worker.post_result(claimed["id"], lease, 2).status_code == 200

    done_at = events.index(("done", job["id"]))
    fsynced_before_done = {inode for kind, inode in events[:done_at] if kind == "fsync"}
    folder = app.extensions["dalleq"].storage.folder(files_dir_of(app, job["id"]))
    must_be_durable = [*folder.iterdir(), folder, folder.parent]
    assert len(must_be_durable) == 2 + 2 + 2 * 2  # grid, thumb, 4 tiles, folder, jobs/
    for path in must_be_durable:
        status = path.stat()
        assert (status.st_dev, status.st_ino) in fsynced_before_done, f"{path} not fsynced"


def files_dir_of(app, job_id: str) -> str:
    from sqlalchemy import select

    from server.models import jobs_table

    with app.extensions["dalleq"].engine.connect() as connection:
        return connection.execute(
            select(jobs_table.c.files_dir).where(jobs_table.c.id == job_id)).scalar_one()


# -- orphaned result folders --------------------------------------------------------------------
def make_folder(root, name: str, age_seconds: float):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "grid.png").write_bytes(b"half an upload")
    made_at = time.time() - age_seconds
    os.utime(folder, (made_at, made_at))
    return folder


def test_the_sweep_removes_old_orphans_and_keeps_young_ones_and_live_jobs(app, client, worker):
    storage = app.extensions["dalleq"].storage
    job = submit(client, grid=1)
    claimed, lease = worker.claim_one()
    assert worker.post_result(claimed["id"], lease, 1).status_code == 200
    live = storage.folder(files_dir_of(app, job["id"]))
    made_at = time.time() - 10 * ORPHAN_MIN_AGE_SECONDS
    os.utime(live, (made_at, made_at))
    old_orphan = make_folder(storage.root, "gone-job-1234abcd", 2 * ORPHAN_MIN_AGE_SECONDS)
    young_orphan = make_folder(storage.root, "uploading-5678ef01", ORPHAN_MIN_AGE_SECONDS / 2)

    sweeper = OrphanSweeper(app.extensions["dalleq"].engine, storage)
    assert sweeper.sweep() == 1
    assert not old_orphan.exists()
    assert young_orphan.is_dir() and live.is_dir()
    with client.get(f"/files/{job['id']}/grid.png") as response:
        assert response.status_code == 200
    assert sweeper.sweep(now_seconds=time.time() + ORPHAN_MIN_AGE_SECONDS) == 1  # it grew old
    assert not young_orphan.exists() and live.is_dir()


def test_a_starting_server_sweeps_orphans_left_by_a_kill(tmp_path):
    jobs_root = tmp_path / "data" / "jobs"
    old_orphan = make_folder(jobs_root, "killed-upload-1234abcd", 2 * ORPHAN_MIN_AGE_SECONDS)
    young_orphan = make_folder(jobs_root, "uploading-5678ef01", 60)
    server = ServerProcess(tmp_path).start()
    try:
        wait_for(lambda: not old_orphan.exists(), message="the old orphan to be swept")
        assert young_orphan.is_dir()
        assert "removing killed-upload-1234abcd from the data dir" in server.output()
    finally:
        server.stop()


def test_the_sweep_removes_old_previews_of_jobs_that_no_longer_run(app, client, worker):
    services = app.extensions["dalleq"]
    previews = services.queue.previews
    ended = submit(client, grid=1)
    claimed, lease = worker.claim_one()
    assert worker.post_result(claimed["id"], lease, 1).status_code == 200
    running = submit(client, grid=1)
    worker.claim_one()
    old = time.time() - 2 * ORPHAN_MIN_AGE_SECONDS
    for job_id, made_at in ((ended["id"], old), (running["id"], old), ("gone-job", old),
                            ("young-gone-job", time.time())):
        previews.save(job_id, b"RIFF....WEBP")  # what a server killed before its delete left
        os.utime(previews.path(job_id), (made_at, made_at))

    sweeper = OrphanSweeper(services.engine, services.storage, previews)
    assert sweeper.sweep() == 2
    assert not previews.path(ended["id"]).exists() and not previews.path("gone-job").exists()
    assert previews.path(running["id"]).exists()  # its job still runs: it is the live preview
    assert previews.path("young-gone-job").exists()  # young: left for a later sweep
