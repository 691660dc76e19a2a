"""The long fuzz run (issue 16, "A fuzzer that stays"): Schemathesis against a live server.

The same run as tests/test_fuzz.py (tests/fuzzing.py says what is generated and checked), with
many more requests: `--requests` spread evenly over every operation of /api/v1/openapi.json, in
both positive and negative mode. It prints the requests sent, the 5xx found (must be 0) and each
distinct failed check with a curl command that replays it. The exit status is 1 on any failure.

Run: python bench/fuzz.py                 (--requests N, --seed S, --jobs J; --help)
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fuzzing import MODES, FuzzReport, claim_leases, fuzz, load_schema, submit_jobs
from tests.helpers import ServerProcess

TOKEN = "bench-fuzz-worker-token"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="about this many in all")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (same seed, same run)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=8,
        help="jobs queued first, so ids exist; half are leased for worker calls",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="dalleq-fuzz-") as folder:
        server = ServerProcess(Path(folder), env={"DALLEQ_WORKER_TOKEN": TOKEN}).start()
        try:
            job_ids = submit_jobs(server.url, args.jobs)
            leases = claim_leases(server.url, TOKEN, args.jobs // 2)
            operation_count = len(list(load_schema(server.url, job_ids).get_all_operations()))
            report, random_seed = FuzzReport(), args.seed
            started = time.monotonic()
            # Some operations have nothing to break in negative mode: rounds with the next seed
            # make up the difference, each sized to what is left.
            while report.requests_sent < args.requests:
                left = args.requests - report.requests_sent
                examples = math.ceil(left / (operation_count * len(MODES)))
                fuzz(
                    server.url,
                    TOKEN,
                    job_ids,
                    leases,
                    examples=examples,
                    random_seed=random_seed,
                    report=report,
                )
                random_seed += 1
            seconds = time.monotonic() - started
        finally:
            server.stop()
    print(f"requests sent: {report.requests_sent} in {seconds:.0f} s "
          f"({operation_count} operations x {len(MODES)} modes, seeds {args.seed}..{random_seed - 1})")  # fmt: skip
    print(f"5xx found: {report.server_errors}")
    print(f"failed checks: {len(report.failures)} ({len(report.distinct())} distinct)")
    for failure in report.distinct():
        print(failure)
    if report.modes_without_cases:
        print("nothing to generate for: " + ", ".join(sorted(set(report.modes_without_cases))))
    return 1 if report.failures or report.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
