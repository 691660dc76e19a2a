"""bench/bench_int8.py, the fidelity figures issue 19 asks for, runs end to end on the tiny shape
and prints a finite figure in every column (the mini-shape run is the bench's, not CI's)."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURE = r"(\d+(?:\.\d+)?%?|inf)"


def test_the_fidelity_bench_prints_each_comparison_and_the_unrelated_floor():
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_int8.py"), "--shape", "tiny",
         "--prompts", "2"],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    output = completed.stdout
    for pair in ("int8 vs bf16", "int8 vs fp32", "bf16 vs fp32"):
        row = re.search(rf"^{pair}:\s+{FIGURE}\s+{FIGURE}\s+{FIGURE}\s+{FIGURE}\s+{FIGURE}\s+"
                        rf"{FIGURE} dB\s+{FIGURE} dB$", output, re.MULTILINE)
        assert row, output
        _, _, same_argmax, logit_error, logit_std = row.groups()[:5]
        assert 0 < float(same_argmax.rstrip("%")) <= 100
        assert 0 < float(logit_error) < float(logit_std)  # approximate, and close
    assert re.search(rf"^unrelated:\s+{FIGURE} dB$", output, re.MULTILINE), output
