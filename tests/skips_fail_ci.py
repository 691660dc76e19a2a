"""A pytest plugin: under CI=true a skipped test fails the run.

A missing Chromium, PostgreSQL or C++ compiler shows up as a skip, and a skip never fails a run,
so CI could go green having tested nothing of it. Here every skip, of one test or of a whole
module at collection, becomes a failure that names its reason. An xfail stays an xfail.
"""

import os

import pytest


def is_ci() -> bool:
    """Read when each report is made, so a test can run this plugin with and without CI."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def skip_reason(report) -> str:
    """The reason pytest keeps in a skip's (path, line, reason) tuple."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def fail_if_skipped(report) -> None:
    if is_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.longrepr = f"skipped under CI: {skip_reason(report)}"
        report.outcome = "failed"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    fail_if_skipped(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Module-level skips (pytest.importorskip, skip(allow_module_level=True)) happen here."""
    report = yield
    fail_if_skipped(report)
    return report
