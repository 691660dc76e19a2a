"""The plugin that fails a CI run on any skip, run on small test files of its own (pytester)."""

import pytest

SKIPPING_TESTS = """
import pytest

def test_skips_itself():
    pytest.skip("no compiler")

@pytest.mark.skipif(True, reason="no Chromium")
def test_is_skipped_by_a_mark():
    pass

@pytest.mark.xfail(reason="a known bug")
def test_is_expected_to_fail():
    assert False

def test_passes():
    pass
"""

SKIPPING_MODULE = """
import pytest

pytest.importorskip("a_module_nobody_has")

def test_never_collected():
    pass
"""


@pytest.fixture
def run(pytester, monkeypatch):
    """run(ci, source): pytest in-process on one file of `source`, with CI set to `ci` or unset."""
    def run_with(ci: str | None, source: str):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # a second of plugins per run
        pytester.makepyfile(test_sample=source)
        return pytester.runpytest_inprocess("-p", "tests.skips_fail_ci", "-p", "no:cacheprovider")
    return run_with


def test_without_ci_a_skip_is_a_skip(run):
    result = run(None, SKIPPING_TESTS)
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == 0


def test_under_ci_a_skip_fails_with_its_reason(run):
    result = run("true", SKIPPING_TESTS)
    result.assert_outcomes(passed=1, failed=1, errors=1, xfailed=1)  # a setup skip is an error
    result.stdout.fnmatch_lines(["*skipped under CI: no compiler*",
                                 "*skipped under CI: no Chromium*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("ci", [None, "true"])
def test_a_module_skip_fails_only_under_ci(run, ci):
    result = run(ci, SKIPPING_MODULE)
    if ci is None:
        result.assert_outcomes(skipped=1)
        assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    else:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*skipped under CI: could not import 'a_module_nobody_has'*"])
        assert result.ret == pytest.ExitCode.INTERRUPTED
