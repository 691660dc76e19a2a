"""A finished job's files survive a power cut: they are on disk before the job says `done`."""

import os

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
