"""Fixtures: an app on a fresh SQLite file (or PostgreSQL), its client, a worker helper, a live server.

Set DALLEQ_TEST_POSTGRES_URL (as .ci/run does) to run every `backend` test on PostgreSQL too;
without it they skip. Under CI=true every skip fails the run (tests/skips_fail_ci.py).
"""

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from server import create_app, db, load_settings
from server.config import Settings
from server.queue import JobQueue
from tests.helpers import ServerProcess, result_files

pytest_plugins = ["tests.skips_fail_ci", "pytester"]

WORKER_TOKEN = "test-worker-token"
POSTGRES_URL = os.environ.get("DALLEQ_TEST_POSTGRES_URL")

# PostgreSQL is always a backend: without its URL its tests skip, which fails a CI run.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def fresh_postgres_database() -> str:
    """A new empty database on the test server; returns its URL."""
    name = "dalleq_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("no PostgreSQL: set DALLEQ_TEST_POSTGRES_URL (.ci/run starts one)")
        return fresh_postgres_database()
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
def queue(database_url):
    """A JobQueue on a migrated database of each backend (tests may override it with settings)."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield JobQueue(engine, Settings(database_url=database_url))
    engine.dispose()


@pytest.fixture
def settings(tmp_path):
    return load_settings(
        {},
        database_url=f"sqlite:///{tmp_path / 'queue.db'}",
        data_dir=str(tmp_path / "data"),
        worker_token=WORKER_TOKEN,
        secret_key="test-secret",
    )


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["dalleq"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


class WorkerActions:
    """The worker side of the protocol through the test client."""

    def __init__(self, client, token=WORKER_TOKEN):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def claim(self, models=("mini",), **extra):
        body = {"worker": "test-worker", "models": list(models), **extra}
        return self.client.post("/api/v1/worker/claim", json=body, headers=self.headers)

    def claim_one(self, **extra):
        response = self.claim(**extra)
        assert response.status_code == 200, response.get_data(as_text=True)
        (claimed,) = response.json["jobs"]
        return claimed["job"], claimed["lease"]

    def heartbeat(self, job_id, lease, progress=0.5):
        return self.client.post(
            f"/api/v1/worker/jobs/{job_id}/heartbeat",
            json={"lease": lease, "progress": progress},
            headers=self.headers,
        )

    def fail(self, job_id, lease, error="boom", retryable=True):
        return self.client.post(
            f"/api/v1/worker/jobs/{job_id}/fail",
            json={"lease": lease, "error": error, "retryable": retryable},
            headers=self.headers,
        )

    def post_result(self, job_id, lease, grid, **file_overrides):
        files = result_files(grid, **file_overrides)
        data = {name: (io_of(content), filename) for name, (filename, content, _) in files.items()}
        data["lease"] = lease
        return self.client.post(
            f"/api/v1/worker/jobs/{job_id}/result",
            data=data,
            headers=self.headers,
            content_type="multipart/form-data",
        )


def io_of(content: bytes):
    import io

    return io.BytesIO(content)


@pytest.fixture
def worker(client):
    return WorkerActions(client)


@pytest.fixture
def live_server(tmp_path):
    """The real server in a subprocess on 127.0.0.1, with a worker token; stopped afterwards."""
    server = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN}).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random checkpoint in the published format, written once by the product's own writer."""
    pytest.importorskip("jax")
    from minidalle.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def jax_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="session")
def cpu_kernels():
    """minidalle/cpu's kernels, built and registered (they need g++ and AVX2; CI installs g++)."""
    pytest.importorskip("jax")
    from minidalle.cpu import build

    if not build.ensure_registered():
        pytest.skip("the CPU kernels cannot be built here (no g++, no AVX2, or not a CPU)")


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_checkpoint, jax_cache_dir):
    """The tiny model as `Pipeline.load` gives it by default, which is what workers run."""
    from minidalle.pipeline import Pipeline

    return Pipeline.load(tiny_checkpoint, compilation_cache_dir=jax_cache_dir)


MODEL_BACKENDS = ["xla", "cpu"]  # plain JAX (what a GPU runs) and minidalle/cpu's kernels


def load_on(backend: str, request, *args, **kwargs):
    """Pipeline.load(*args, backend=backend, ...), the CPU kernels built first; checks that the
    pipeline really runs on that backend."""
    from minidalle.pipeline import Pipeline

    if backend == "cpu":
        request.getfixturevalue("cpu_kernels")
    pipeline = Pipeline.load(*args, backend=backend, **kwargs)
    assert pipeline.config.backend.name == backend
    return pipeline


@pytest.fixture(scope="session", params=MODEL_BACKENDS)
def tiny_pipeline_on_each_backend(request, tiny_checkpoint, jax_cache_dir):
    return load_on(request.param, request, tiny_checkpoint, compilation_cache_dir=jax_cache_dir)
