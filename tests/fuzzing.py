"""Schemathesis against a live server, driven by the server's own OpenAPI document.

Shared by tests/test_fuzz.py (a bounded pass in the suite) and bench/fuzz.py (the long run).
Each operation gets Hypothesis-generated requests, valid ones (positive) and ones that break the
document (negative), with a fixed seed so a CI failure replays. Every answer goes through four
checks: no 5xx, a status the document lists, its content type, and its body against the
document's schema (which holds every error to `{"error": {"code", "message"}}`).
"""

import dataclasses

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.errors import FailureGroup

CHECK_NAMES = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
TIMEOUT_SECONDS = 10.0
LONG_POLL = "/api/v1/worker/claim"


@dataclasses.dataclass
class FuzzFailure:
    """One failed check: where, which check, and the request that shows it (as curl)."""

    operation: str
    check: str
    status: int | None
    request: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.check} [{self.status}]\n    {self.request}"


@dataclasses.dataclass
class FuzzReport:
    requests_sent: int = 0
    server_errors: int = 0
    failures: list[FuzzFailure] = dataclasses.field(default_factory=list)
    modes_without_cases: list[str] = dataclasses.field(default_factory=list)

    def distinct(self) -> list[FuzzFailure]:
        """One failure per operation, check and status (the first request that showed it)."""
        seen = {}
        for failure in self.failures:
            seen.setdefault((failure.operation, failure.check, failure.status), failure)
        return list(seen.values())


def submit_jobs(base_url: str, count: int) -> list[str]:
    """Queue `count` jobs through the API, so the fuzzer's ids can hit real ones."""
    return [
        requests.post(f"{base_url}/api/v1/jobs", json={"prompt": f"fuzz seed job {i}"}).json()["id"]
        for i in range(count)
    ]


def claim_leases(base_url: str, worker_token: str, count: int) -> list[tuple[str, str]]:
    """Leases `count` queued jobs as a worker would: (job id, lease) pairs the fuzzer may send."""
    response = requests.post(
        f"{base_url}/api/v1/worker/claim",
        json={"worker": "fuzz", "models": ["mini"], "max_jobs": count},
        headers={"Authorization": f"Bearer {worker_token}"},
    )
    return [(claimed["job"]["id"], claimed["lease"]) for claimed in response.json()["jobs"]]


def load_schema(base_url: str, job_ids: list[str], leases: list[tuple[str, str]] = ()):
    """The server's document, with real job ids (and their leases, for the worker's job calls)
    mixed into what is generated, and no long polls."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    schema.config.checks.update(included_check_names=CHECK_NAMES)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        if not path_parameters or "job_id" not in path_parameters or not job_ids:
            return st.just(path_parameters)
        real = st.sampled_from(job_ids).map(lambda job_id: {**path_parameters, "job_id": job_id})
        return st.one_of(st.just(path_parameters), real)

    @schema.hook
    def flatmap_case(context, case):
        # Past the lease check, a worker's call reaches its queue verb and the upload's checks.
        is_leased = (
            isinstance(case.body, dict)
            and "lease" in case.body
            and "job_id" in (case.path_parameters or {})
        )
        if not leases or not is_leased:
            return st.just(case)

        def with_lease(pair):
            job_id, lease = pair
            case.path_parameters = {**case.path_parameters, "job_id": job_id}
            case.body = {**case.body, "lease": lease}
            return case

        return st.one_of(st.just(case), st.sampled_from(list(leases)).map(with_lease))

    @schema.hook
    def map_body(context, body):
        # A claim may wait up to 30 s for a job: a generated `wait` in range becomes 0, so the
        # fuzzer spends its time on requests rather than long polls. Out-of-range ones stay.
        is_claim = context.operation is not None and context.operation.path == LONG_POLL
        wait = body.get("wait") if isinstance(body, dict) else None
        if is_claim and type(wait) in (int, float) and 0 < wait <= 30:
            return {**body, "wait": 0}
        return body

    return schema


def fuzz_operation(
    operation,
    mode,
    report: FuzzReport,
    session: requests.Session,
    headers: dict,
    *,
    examples: int,
    random_seed: int,
) -> None:
    """Sends `examples` generated requests to one operation in one mode, recording failures."""

    @seed(random_seed)
    @settings(
        max_examples=examples,
        deadline=None,  # a live server's time per request is not the code under test
        database=None,  # no .hypothesis folder: CI replays from the seed
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each request counts once
        # About speed only: a live server is slow next to Hypothesis's budget, and an operation
        # with little to break filters most negative drafts (Unsatisfiable below when all).
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case):
        report.requests_sent += 1
        response = case.call(session=session, headers=headers, timeout=TIMEOUT_SECONDS)
        if response.status_code >= 500:
            report.server_errors += 1
        try:
            case.validate_response(response)
        except FailureGroup as group:
            request = case.as_curl_command(headers=headers)
            for failure in group.exceptions:
                report.failures.append(
                    FuzzFailure(operation.label, failure.title, response.status_code, request)
                )

    try:
        send()
    except Unsatisfiable:  # nothing to break: a negative case of an operation without input
        report.modes_without_cases.append(f"{operation.label} ({mode.value})")


def fuzz(base_url: str, worker_token: str, job_ids: list[str], leases=(), *, examples: int,
         random_seed: int = 0, report: FuzzReport | None = None) -> FuzzReport:  # fmt: skip
    """Runs `examples` generated requests per operation and mode; returns what they found
    (added to `report` when given)."""
    schema = load_schema(base_url, job_ids, leases)
    report = report or FuzzReport()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {worker_token}"}
    for result in schema.get_all_operations():
        for mode in MODES:
            fuzz_operation(
                result.ok(),
                mode,
                report,
                session,
                headers,
                examples=examples,
                random_seed=random_seed,
            )
    return report
