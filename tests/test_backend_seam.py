"""minidalle/cpu is a plug-in: the model runs as plain JAX without it. (That only the seam,
minidalle/backend.py, imports it is an import-linter contract in pyproject.toml.)"""

import subprocess
import sys

import pytest

pytest.importorskip("jax")

from tests.helpers import REPO

WITHOUT_THE_CPU_PACKAGE = """
import sys
sys.modules["minidalle.cpu"] = None  # any import of it raises ImportError
from minidalle.pipeline import Pipeline
pipeline = Pipeline.load(sys.argv[1], compilation_cache_dir=False, backend="xla")
codes = pipeline.generate_tokens("a red apple", seed=1, n=1)
print(pipeline.config.backend.name, codes.shape, sys.modules["minidalle.cpu"],
      sorted(m for m in sys.modules if m.startswith("minidalle.cpu.")))
"""


def test_the_pipeline_generates_with_the_cpu_package_unimportable(tiny_checkpoint):
    result = subprocess.run([sys.executable, "-c", WITHOUT_THE_CPU_PACKAGE, str(tiny_checkpoint)],
                            cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "xla (1, 256) None []"
