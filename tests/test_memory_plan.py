"""The memory plan (issue 19): exact parameter counts from the config, the bytes each dtype needs,
the refusal that names what fits, `dalleq weights info`, and the worker's check at start.

The counts are checked against the tree the model itself builds (`checkpoint.abstract_params`,
an eval_shape: nothing allocated, so mega runs here too) and against the figures of
shared/reference/dalle-mini-architecture.md §2 and §7.
"""

import json
import math
import os
import subprocess
import sys

import jax
import pytest
from click.testing import CliRunner
from flax.traverse_util import flatten_dict

from dalleq.cli import main
from dalleq.memory_check import WORKER_BATCH_IMAGES, check_worker_memory, device_capacity
from minidalle import memory_plan
from minidalle.checkpoint import abstract_params
from minidalle.config import DalleBartConfig
from minidalle.memory_plan import (
    check_fit,
    format_bytes,
    kv_cache_bytes,
    memory_need,
    param_count,
    vqgan_decode_param_count,
    weight_bytes,
)
from minidalle.published_configs import published_config
from minidalle.tiny import TINY_VQGAN
from minidalle.vqgan import VQGANConfig, abstract_decode_params
from tests.helpers import REPO

# §2 "Parameter counts", and the fp16 mega artifact: a 5,175,050,240-byte allocation when it is
# restored (saharmor/dalle-playground#114), the params' bytes plus tcmalloc's 8 KiB (§2).
REFERENCE_PARAM_COUNT = {"mini": 437_833_712, "mega": 2_587_521_024}
MEGA_FP16_ALLOCATION_BYTES = 5_175_050_240
TCMALLOC_OVERHEAD_BYTES = 8 * 1024
VQGAN_DECODE_PATH_PARAMS_M = 46.7  # §7 "Parameter counts"
GB = 1e9


def leaves(tree) -> dict:
    return flatten_dict(tree, sep="/")


def size_of(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", ["mini", "mega"])
def test_param_count_is_the_size_of_the_models_own_tree(name):
    config = published_config(name)
    assert param_count(config).total == size_of(abstract_params(config))
    assert param_count(config).total == REFERENCE_PARAM_COUNT[name]


SWITCHED_CONFIGS = [
    {"use_bias": True},
    {"use_head_scale": True},
    {"force_ln_scale": True},
    {"ln_type": "rmsnorm"},
    {"ln_type": "rmsnorm", "force_ln_scale": True},
    {"use_glu": False},
    {"use_final_ln_encoder": False, "use_final_ln_decoder": False},
    {"encoder_ffn_dim": 96, "decoder_ffn_dim": 80, "encoder_layers": 3},
]


@pytest.mark.parametrize("switches", SWITCHED_CONFIGS, ids=lambda s: ",".join(s))
def test_param_count_follows_every_switch_that_adds_or_removes_params(switches):
    small = {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2,
             "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 48,
             "decoder_ffn_dim": 48, "encoder_vocab_size": 300, "image_vocab_size": 100,
             "image_length": 16, "max_text_length": 8}
    config = DalleBartConfig(**{**small, **switches})
    assert param_count(config).total == size_of(abstract_params(config))


@pytest.mark.parametrize("name", ["mini", "mega"])
def test_int8_bytes_are_int8_kernels_with_fp32_column_scales_and_bf16_for_the_rest(name):
    config = published_config(name)
    expected = 0
    for path, leaf in leaves(abstract_params(config)).items():
        size = math.prod(leaf.shape)
        if path.endswith("/kernel"):  # [..., K, N] int8 + one fp32 scale per column [..., N]
            expected += size + 4 * size // leaf.shape[-2]
        else:
            expected += 2 * size
    assert weight_bytes(config, "int8") == expected


def test_mega_in_bf16_is_the_published_fp16_artifact_byte_for_byte():
    mega = published_config("mega")
    assert weight_bytes(mega, "bf16") == weight_bytes(mega, "fp16") == 2 * REFERENCE_PARAM_COUNT["mega"]
    assert weight_bytes(mega, "bf16") == MEGA_FP16_ALLOCATION_BYTES - TCMALLOC_OVERHEAD_BYTES
    assert format_bytes(weight_bytes(mega, "fp32")) == "10.4 GB"  # the and HF's figure
    assert format_bytes(weight_bytes(mega, "int8")) == "2.7 GB"  # "about 2.7 GB" in the issue


@pytest.mark.parametrize("config", [VQGANConfig(), TINY_VQGAN], ids=["published", "tiny"])
def test_vqgan_decode_path_count_is_the_size_of_its_tree(config):
    assert vqgan_decode_param_count(config) == size_of(abstract_decode_params(config))


def test_vqgan_decode_path_count_matches_the_reference():
    assert round(vqgan_decode_param_count(VQGANConfig()) / 1e6, 1) == VQGAN_DECODE_PATH_PARAMS_M


def test_kv_cache_is_two_rows_per_image_over_image_and_text_positions():
    mega = published_config("mega")
    rows, positions = 2 * 16, 256 + 64
    assert kv_cache_bytes(mega, "fp32", 16) == 24 * 2 * rows * positions * 2048 * 4
    assert kv_cache_bytes(mega, "bf16", 16) == kv_cache_bytes(mega, "int8", 16)
    assert 2 * kv_cache_bytes(mega, "bf16", 16) == kv_cache_bytes(mega, "fp32", 16)


def test_everything_but_the_weights_grows_with_the_batch():
    mini = published_config("mini")
    one, two = memory_need(mini, "bf16", 1), memory_need(mini, "bf16", 2)
    assert one.weight_bytes == two.weight_bytes
    assert two.kv_cache_bytes == 2 * one.kv_cache_bytes
    assert two.activation_bytes > one.activation_bytes
    assert one.total_bytes == one.weight_bytes + one.kv_cache_bytes + one.activation_bytes


@pytest.mark.parametrize("count, shown", [
    (0, "0 B"), (999, "999 B"), (1_500, "1.5 kB"), (875_667_424, "875.7 MB"),
    (14_200_000_000, "14.2 GB"), (2.5e12, "2.5 TB"),
])
def test_format_bytes(count, shown):
    assert format_bytes(count) == shown


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="unknown dtype 'int4'"):
        weight_bytes(published_config("mini"), "int4")


# -- does it fit? ------------------------------------------------------------------------------


def fit(dtype, batch, capacity_gb, **extra):
    return check_fit(published_config("mega"), dtype, batch, int(capacity_gb * GB),
                     model_label="mega", device_label="cuda:0", **extra)


def test_a_batch_that_fits_is_ok():
    answer = fit("bf16", 9, 24)
    assert answer.is_ok
    assert answer.message.startswith("mega in bf16 needs ")
    assert answer.message.endswith("cuda:0 has 24.0 GB: it fits")


def test_too_small_a_device_names_a_dtype_that_fits_and_the_largest_batch():
    mega = published_config("mega")
    answer = fit("fp32", 9, 11.5)
    fp32_total = format_bytes(memory_need(mega, "fp32", 9).total_bytes)
    bf16_total = format_bytes(memory_need(mega, "bf16", 9).total_bytes)
    largest = max(n for n in range(1, 9) if memory_need(mega, "fp32", n).total_bytes <= 11.5 * GB)
    assert not answer.is_ok
    assert answer.message == (
        f"mega in fp32 needs {fp32_total} for 9 images at once, but cuda:0 has 11.5 GB: "
        f"--dtype bf16 fits ({bf16_total}), or --batch {largest} fits in fp32 "
        f"({format_bytes(memory_need(mega, 'fp32', largest).total_bytes)})"
    )


def test_when_no_dtype_fits_the_batch_it_names_the_narrowest_dtypes_largest_batch():
    answer = fit("bf16", 4, 6, images_per_batch_unit=16, batch_flag="--max-batch")
    assert not answer.is_ok
    assert "for 64 images at once" in answer.message
    assert answer.message.endswith("--dtype int8 with --max-batch 1 fits (5.1 GB)")


def test_when_nothing_fits_it_says_so():
    answer = fit("fp32", 1, 1)
    assert not answer.is_ok
    assert answer.message.endswith("not even --batch 1 in int8 fits (3.2 GB)")


def test_only_the_dtypes_offered_are_suggested():
    answer = fit("fp32", 9, 8, dtypes=("fp32", "bf16"))
    assert "int8" not in answer.message
    assert "--dtype bf16 fits" in answer.message


# -- dalleq weights info -------------------------------------------------------------------------


def weights_info(*args, env=None):
    return CliRunner().invoke(main, ["weights", "info", *map(str, args)], prog_name="dalleq",
                              env=env)


@pytest.mark.parametrize("name", ["mini", "mega"])
def test_weights_info_prints_the_count_and_a_row_per_dtype_without_a_download(name, tmp_path):
    result = weights_info(name, "--cache", tmp_path)
    assert result.exit_code == 0, result.output
    config = published_config(name)
    lines = result.output.splitlines()
    assert lines[0] == (f"{name}: {REFERENCE_PARAM_COUNT[name]:,} parameters "
                        f"(config: the published values, nothing downloaded)")
    assert lines[1] == (f"memory for {WORKER_BATCH_IMAGES} images at once "
                        f"({2 * WORKER_BATCH_IMAGES} decoder rows with super-conditioning):")
    assert lines[2].split() == ["dtype", "weights", "KV", "cache", "activations", "total"]
    for line, dtype in zip(lines[3:6], ("fp32", "bf16", "int8"), strict=True):
        need = memory_need(config, dtype, WORKER_BATCH_IMAGES)
        assert line.split() == [dtype, *" ".join(format_bytes(size) for size in (
            need.weight_bytes, need.kv_cache_bytes, need.activation_bytes,
            need.total_bytes)).split()]
    assert not list(tmp_path.iterdir())  # nothing fetched, nothing written


def test_weights_info_says_whether_it_fits_a_device(tmp_path):
    result = weights_info("mega", "--batch", 9, "--device-memory", 11.5, "--cache", tmp_path)
    assert result.exit_code == 0, result.output
    assert "memory for 9 images at once" in result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("does not fit: mega in fp32 needs ")
    assert "but the device has 11.5 GB: --dtype bf16 fits" in last
    fits = weights_info("mini", "--dtype", "int8", "--device-memory", 4, "--cache", tmp_path)
    assert fits.output.splitlines()[-1].startswith("fits: mini in int8 needs ")


def write_config(folder, **values):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(DalleBartConfig(**values).to_dict()))
    return folder


def test_weights_info_reads_a_folders_config_and_a_fetched_models_own(tmp_path):
    folder = write_config(tmp_path / "small", d_model=64, encoder_layers=2, decoder_layers=2,
                          encoder_attention_heads=4, decoder_attention_heads=4)
    result = weights_info(folder)
    assert result.exit_code == 0, result.output
    count = param_count(DalleBartConfig.load(folder)).total
    assert result.output.startswith(f"small: {count:,} parameters (config: {folder}/config.json)")
    write_config(tmp_path / "cache" / "mini", decoder_layers=6)
    fetched = weights_info("mini", "--cache", tmp_path / "cache")
    count = param_count(DalleBartConfig(decoder_layers=6)).total
    assert fetched.output.startswith(f"mini: {count:,} parameters")


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nowhere", "does not exist"),
    (lambda tmp: tmp, "has no config.json"),
])
def test_weights_info_refuses_a_bad_name_or_folder_in_one_line(tmp_path, make, message):
    result = weights_info(make(tmp_path))
    assert result.exit_code == 2
    error = result.output.splitlines()[-1]
    assert error.startswith("Error: Invalid value for NAME|DIR: ") and message in error
    assert "give mini or mega, or a model folder with config.json" in error


# -- the worker ------------------------------------------------------------------------------


def test_the_worker_refuses_to_start_when_the_device_is_too_small(tmp_path):
    # Only config.json: the check must come before anything is loaded.
    folder = write_config(tmp_path / "model")
    result = subprocess.run(
        [sys.executable, "-m", "dalleq", "worker", "--server", "http://127.0.0.1:9", "--token",
         "t", "--model", str(folder), "--device-memory", "2", "--spool", str(tmp_path / "spool")],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, DALLEQ_MODELS=str(tmp_path / "cache")),
    )
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: not starting: model in fp32 needs ")
    assert "for 16 images at once, but the device has 2.0 GB: " in error
    assert "--dtype bf16 fits" in error


def test_the_worker_logs_its_plan_when_it_fits(tmp_path, caplog):
    folder = write_config(tmp_path / "model")
    with caplog.at_level("INFO", logger="dalleq.memory_check"):
        check_worker_memory("mini", folder, "bf16", 2, 64.0, ("fp32", "bf16", "fp16"))
    (line,) = [record.getMessage() for record in caplog.records]
    assert line.startswith("memory plan: mini in bf16 needs ")
    assert line.endswith("for 32 images at once; the device has 64.0 GB: it fits")


def test_the_worker_asks_a_cpu_device_for_the_hosts_available_memory():
    import psutil

    capacity_bytes, label = device_capacity()
    assert label == "cpu:0 (host memory)"
    assert 0 < capacity_bytes <= psutil.virtual_memory().total


def test_the_plan_module_allocates_nothing_and_imports_no_device_code():
    source = (REPO / "minidalle" / "memory_plan.py").read_text()
    assert "import jax" not in source and "jnp." not in source
    assert memory_plan.PLAN_DTYPES == ("fp32", "bf16", "int8")


def test_the_readme_shows_what_weights_info_mega_prints(tmp_path):
    readme = (REPO / "README.md").read_text()
    output = weights_info("mega", "--cache", tmp_path).output
    assert f"```\n$ dalleq weights info mega\n{output}```" in readme


class FakeGpu:
    """What a jax GPU Device answers: platform, id and its allocator's memory_stats()."""

    platform, id = "gpu", 0

    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        return self.stats


def test_a_gpu_offers_its_jax_pool_less_what_is_in_use():
    device = FakeGpu({"bytes_limit": 11_500_000_000, "bytes_in_use": 500_000_000})
    assert device_capacity(device) == (11_000_000_000, "gpu:0")


def test_a_device_without_memory_stats_is_not_checked():
    assert device_capacity(FakeGpu(None)) == (None, "gpu:0")
