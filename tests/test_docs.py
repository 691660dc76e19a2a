"""Drift tests (STYLE 34): the README, --help, shared/API.md and the tests stay in step."""

import re

import pytest
from click.testing import CliRunner

from dalleq.cli import main
from server.config import Settings, env_name
from tests.helpers import REPO

README = (REPO / "README.md").read_text()
API_DOC = REPO.parent / "shared" / "API.md"


def cli_variables(command=main):
    found = set()
    for param in getattr(command, "params", []):
        if getattr(param, "envvar", None):
            found.add(param.envvar)
    for sub in getattr(command, "commands", {}).values():
        found |= cli_variables(sub)
    return found


def test_every_setting_is_in_the_readme_configuration_table():
    import dataclasses

    names = {env_name(field.name) for field in dataclasses.fields(Settings)} | cli_variables()
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert not missing, f"add these to the README's configuration table: {missing}"


@pytest.mark.parametrize("words", [["up"], ["worker"], ["serve"], ["db", "upgrade"]])
def test_readme_command_reference_matches_help(words):
    output = CliRunner().invoke(
        main, [*words, "--help"], prog_name="dalleq", terminal_width=100
    ).output.rstrip("\n")
    marker = f"<!-- help: {' '.join(words)} -->\n```\n"
    assert marker in README, f"the README has no help block for dalleq {' '.join(words)}"
    block = README.split(marker, 1)[1].split("\n```", 1)[0]
    assert block == output, f"README help for `dalleq {' '.join(words)}` is stale"


def endpoints():
    text = API_DOC.read_text()
    return re.findall(r"\| `(GET|POST|DELETE|PUT|PATCH) (/api/v1/[^`]+)`", text)


def test_the_api_doc_lists_endpoints():
    assert len(endpoints()) >= 10


@pytest.mark.parametrize("method, path", endpoints())
def test_every_endpoint_of_the_api_doc_has_a_test(method, path):
    # /api/v1/jobs/<id>/rerun -> a regex matching f-strings and literals used in tests
    pattern = re.escape(path).replace(re.escape("<id>"), r"[^/\"']+")
    call = {"GET": "get", "POST": "post", "DELETE": "delete"}[method]
    sources = "\n".join(
        p.read_text() for p in (REPO / "tests").glob("test_*.py") if p.name != "test_docs.py"
    )
    assert re.search(pattern + r"[\"'?]", sources), f"no test calls {method} {path}"
    assert f".{call}(" in sources


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 -m pytest" in ci and "python3 -m pytest" in README
    assert "bash .ci/run" in README
