"""The streamed checkpoint reader (`msgpack_walk`, `checkpoint.read_checked`): the same weights
as flax's whole-file restore bit for bit, the same clear errors, and memory bounded by the final
weights plus about one layer of the file's floats (issue 19)."""

import tracemalloc

import numpy as np
import pytest

jax = pytest.importorskip("jax")
from flax import serialization

from minidalle.checkpoint import (
    MODEL_FILE,
    load_params,
    load_params_whole,
    read_checked,
    save_params,
)
from minidalle.config import DalleBartConfig, runtime_dtypes
from minidalle.quantize import Int8Kernel
from minidalle.tiny import TINY_VQGAN, tiny_config, write_random_checkpoint

DTYPES = ("fp32", "bf16", "int8")


def small_config(text_vocab_size: int) -> DalleBartConfig:
    """Wider and deeper than tiny, with odd sizes, so stacks and columns are not all alike."""
    return tiny_config(text_vocab_size).replace(d_model=96, encoder_layers=3, decoder_layers=3,
                                                encoder_ffn_dim=136, decoder_ffn_dim=136)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("small-model"), small_config,
                                   TINY_VQGAN, seed=3)


def assert_same_bits(streamed: dict, whole: dict) -> None:
    streamed_leaves, streamed_tree = jax.tree.flatten(streamed)
    whole_leaves, whole_tree = jax.tree.flatten(whole)
    assert streamed_tree == whole_tree
    for mine, theirs in zip(streamed_leaves, whole_leaves, strict=True):
        assert (mine.dtype, mine.shape) == (theirs.dtype, theirs.shape)
        assert mine.tobytes() == theirs.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("checkpoint", ["tiny_checkpoint", "small_checkpoint"])
def test_streamed_load_equals_the_whole_file_restore(checkpoint, dtype, request):
    folder = request.getfixturevalue(checkpoint)
    config = DalleBartConfig.load(folder).replace(**runtime_dtypes(dtype, "cpu"))
    streamed = load_params(folder, config)
    assert_same_bits(streamed, load_params_whole(folder, config))
    kernel = streamed["lm_head"]["kernel"]
    assert isinstance(kernel, Int8Kernel) == (dtype == "int8")


def test_arrays_flax_split_into_chunks_load_the_same(small_checkpoint, tmp_path, monkeypatch):
    params = serialization.msgpack_restore((small_checkpoint / MODEL_FILE).read_bytes())
    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 4096)  # every big array in chunks
    folder = tmp_path / "chunked"
    folder.mkdir()
    (folder / "config.json").write_bytes((small_checkpoint / "config.json").read_bytes())
    save_params(folder, params)
    assert b"__msgpack_chunked_array__" in (folder / MODEL_FILE).read_bytes()
    for dtype in ("bf16", "int8"):
        config = DalleBartConfig.load(folder).replace(**runtime_dtypes(dtype, "cpu"))
        assert_same_bits(load_params(folder, config), load_params_whole(small_checkpoint, config))


def test_a_truncated_file_says_so(tiny_checkpoint, tmp_path):
    config = DalleBartConfig.load(tiny_checkpoint)
    data = (tiny_checkpoint / MODEL_FILE).read_bytes()
    for name, cut in (("header", 3), ("middle", len(data) // 2), ("end", len(data) - 1)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / MODEL_FILE).write_bytes(data[:cut])
        with pytest.raises(ValueError, match="is the file truncated"):
            load_params(folder, config)


def test_misshapen_missing_and_trailing_data_are_named(tiny_checkpoint, tmp_path):
    config = DalleBartConfig.load(tiny_checkpoint)
    params = serialization.msgpack_restore((tiny_checkpoint / MODEL_FILE).read_bytes())
    params["lm_head"]["kernel"] = params["lm_head"]["kernel"][:, :100]
    save_params(tmp_path, params)
    with pytest.raises(ValueError, match=r"lm_head/kernel has shape \(64, 100\), the config"):
        load_params(tmp_path, config)
    del params["lm_head"]
    save_params(tmp_path, params)
    with pytest.raises(ValueError, match="lm_head/kernel is missing"):
        load_params(tmp_path, config)
    with open(tmp_path / MODEL_FILE, "ab") as file:
        file.write(b"\x00")
    with pytest.raises(ValueError, match="1 bytes follow the parameter tree"):
        load_params(tmp_path, config)


def test_streamed_read_holds_about_the_final_weights_and_one_layer(tmp_path):
    """tracemalloc sees numpy's allocations (and none of the mapped file): reading 8 stacked
    layers to bf16 may hold the result and a few layers' worth of fp32, never the whole file."""
    layer_count, rows, columns = 8, 256, 512
    layer_fp32_bytes = rows * columns * 4
    save_params(tmp_path, {"stack": {"kernel": np.ones((layer_count, rows, columns), np.float32)},
                           "norm": {"scale": np.ones((layer_count, columns), np.float32)}})
    expected = {"stack": {"kernel": jax.ShapeDtypeStruct((layer_count, rows, columns),
                                                         np.float32)},
                "norm": {"scale": jax.ShapeDtypeStruct((layer_count, columns), np.float32)}}
    for dtype, quantized in ((jax.numpy.bfloat16, None), (np.float32, lambda key: "kernel" in key)):
        tracemalloc.start()
        try:
            params = read_checked(tmp_path, expected, "test", dtype, quantized)
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        final_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(params))
        assert peak_bytes < final_bytes + 4 * layer_fp32_bytes
