"""Schemathesis against a live `dalleq serve` (issue 16, "A fuzzer that stays"), bounded for CI.

The server's own /api/v1/openapi.json drives it; tests/fuzzing.py says what is checked. The long
run is bench/fuzz.py.
"""

import pytest

from tests.fuzzing import claim_leases, fuzz, submit_jobs
from tests.helpers import ServerProcess

WORKER_TOKEN = "fuzz-worker-token"
EXAMPLES_PER_OPERATION_AND_MODE = 15  # 10 operations x 2 modes: about 300 requests
SEED_JOB_COUNT = 6  # half of them leased to the fuzzer's worker calls


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(tmp_path, env={"DALLEQ_WORKER_TOKEN": WORKER_TOKEN}).start()
    yield process
    process.stop()


def test_the_fuzzer_finds_no_5xx_and_no_answer_outside_the_document(server):
    job_ids = submit_jobs(server.url, SEED_JOB_COUNT)
    leases = claim_leases(server.url, WORKER_TOKEN, SEED_JOB_COUNT // 2)
    report = fuzz(
        server.url, WORKER_TOKEN, job_ids, leases, examples=EXAMPLES_PER_OPERATION_AND_MODE
    )
    assert report.requests_sent >= 200
    found = "\n".join(str(failure) for failure in report.distinct())
    assert not report.failures, f"{len(report.failures)} failed checks:\n{found}"
