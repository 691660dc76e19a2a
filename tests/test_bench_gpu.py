"""bench/gpu.sh cannot rot: its smoke mode runs the GPU bench's code path on this CPU (issue 19).

No GPU is lent to CI, so the one command meant for the day one is lent runs here on tiny shapes
(`--smoke`), skipping the CUDA install, and must print its table with a row for every shape and
dtype. The step's byte count, which the bandwidth share rests on, is checked against the
published mini shape's parameter count by hand.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.decode_step_cost import WeightBytes, decoder_weight_counts, step_cost
from minidalle.config import DalleBartConfig

REPO = Path(__file__).resolve().parent.parent
SMOKE_DTYPES = ["bf16", "int8"]
SMOKE_SHAPES = ["smoke-mini", "smoke-mega"]
NUMBER = r"\d+(?:\.\d+)?"
ROW = re.compile(
    rf"^(?P<run>\S+ \S+ 3x3)\s+(?P<images_per_s>{NUMBER})\s+(?P<s_per_grid>{NUMBER})\s+"
    rf"(?P<compile_s>{NUMBER})\s+(?P<peak_device>n/a|{NUMBER}G)\s+(?P<peak_rss>{NUMBER}G)\s+"
    rf"(?P<gb_per_s>{NUMBER})\s+(?P<bandwidth_share>\d+)%$",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def smoke_output():
    completed = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu.sh"), "--skip-cuda-install", "--smoke",
         "--dtypes", " ".join(SMOKE_DTYPES)],
        capture_output=True, text=True, cwd=REPO, timeout=900, check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def test_the_smoke_run_prints_the_table_with_every_row(smoke_output):
    header = next(line for line in smoke_output.splitlines() if line.startswith("run "))
    for column in ("images/s", "s/grid", "compile s", "peak device", "peak RSS", "GB/s",
                   "bandwidth share"):
        assert column in header
    rows = {match["run"]: match for match in ROW.finditer(smoke_output)}
    expected = {f"{shape} {dtype} 3x3" for shape in SMOKE_SHAPES for dtype in SMOKE_DTYPES}
    assert set(rows) == expected, smoke_output
    for row in rows.values():
        assert float(row["images_per_s"]) > 0
        assert row["peak_device"] == "n/a"  # a CPU keeps no allocator statistics
    assert re.search(r"^elapsed: \d+ s", smoke_output, re.MULTILINE)


def test_an_unknown_option_is_refused_before_anything_runs():
    completed = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh"), "--no-such-option"],
                               capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert completed.returncode == 2
    assert "unknown option --no-such-option" in completed.stderr


def test_a_step_reads_every_streamed_kernel_of_mini():
    config = DalleBartConfig()  # the published mini's shape
    d, f, layers = config.d_model, config.decoder_ffn_dim, config.decoder_layers
    counts = decoder_weight_counts(config)
    # self q,k,v,out and cross q,out (cross k/v are cached), the GLU's three, then the LM head
    assert counts["kernel_weights"] == layers * (6 * d * d + 3 * d * f) + d * 16385
    assert counts["kernel_columns"] == layers * (7 * d + 2 * f) + 16385


def test_int8_reads_one_byte_a_weight_plus_a_scale_a_column():
    config = DalleBartConfig()
    counts = decoder_weight_counts(config)
    rows = 18  # a 3x3 grid with super-conditioning
    bf16_bytes, bf16_flops = step_cost(config, rows, WeightBytes.for_dtype("bf16", "gpu"), counts)
    int8_bytes, int8_flops = step_cost(config, rows, WeightBytes.for_dtype("int8", "gpu"), counts)
    assert bf16_bytes - int8_bytes == counts["kernel_weights"] - 4 * counts["kernel_columns"]
    assert int8_flops == bf16_flops
    # on a CPU the int8 path keeps fp32 activations, so its norms cost twice as much; the KV cache
    # stays bf16 on both
    cpu_int8_bytes, _ = step_cost(config, rows, WeightBytes.for_dtype("int8", "cpu"), counts)
    assert cpu_int8_bytes - int8_bytes == 2 * counts["norm_values"]
