"""The import-linter contracts in pyproject.toml: they hold on this tree, and they catch a break.

They run through import-linter's own `lint-imports` entry point, in a fresh process whose working
folder holds the pyproject.toml, as a person runs it; `--no-cache` keeps its cache out of the tree.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytest.importorskip("importlinter")

PACKAGES = ("dalleq", "server", "worker", "minidalle")
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"],
                          cwd=root, capture_output=True, text=True, timeout=120, check=False)


def test_the_tree_keeps_its_layers():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def copy_of_the_tree(folder: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, folder / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", folder / "pyproject.toml")
    return folder


@pytest.mark.parametrize("module, planted, contract", [
    ("minidalle/grid.py", "import server.defaults", "minidalle stands alone"),
    ("worker/jobs.py", "from server import defaults", "the worker talks to the server over HTTP"),
    ("server/files.py", "import jax", "the server runs without the model stack"),
    ("minidalle/blocks.py", "from minidalle.cpu import matmul",
     "the CPU kernels plug in behind the backend seam alone"),
])
def test_a_planted_import_breaks_its_contract(tmp_path, module, planted, contract):
    root = copy_of_the_tree(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{planted}  # planted by the test\n")
    done = lint_imports(root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{contract}" in done.stdout and "BROKEN" in done.stdout
    assert f"{module.removesuffix('.py').replace('/', '.')} -> " in done.stdout
