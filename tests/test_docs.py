"""Drift tests (STYLE 34): the README, --help and CI stay in step (docs/api.md: test_api_doc.py)."""

import pytest
from click.testing import CliRunner

from dalleq.cli import main
from server.config import Settings, env_name
from tests.helpers import REPO

README = (REPO / "README.md").read_text()


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


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 -m pytest" in ci and "python3 -m pytest" in README
    assert "bash .ci/run" in README
