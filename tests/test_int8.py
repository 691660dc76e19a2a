"""Weight-only int8 (`--dtype int8`): the quantizer, the checkpoint path that loads it, and what
it costs in fidelity, on a random checkpoint written to disk in the published format.

The bound the logits are held to (and the closing note of issue 19 states): against fp32, the
teacher-forced int8 logits' mean absolute error stays under 2% of the logits' standard deviation,
and their correlation above 0.999. On the tiny checkpoint it measured 1.0% and 0.99992 (bf16:
0.6% and 0.99997).
"""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp

from minidalle.checkpoint import load_params
from minidalle.config import DalleBartConfig, runtime_dtypes
from minidalle.model import DalleBart
from minidalle.quantize import Int8Kernel, dequantize, int8_dot, quantize
from tests.conftest import MODEL_BACKENDS, load_on

PROMPT = "a painting of a fox in the snow"
BOS = 16384


def test_each_output_column_gets_its_own_scale_and_rounds_to_within_half_a_step():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 64, 40)).astype(np.float32) * np.linspace(0.01, 5, 40)
    kernel[1, :, 7] = 0  # an all-zero column: no division by zero, zeros back
    quantized = quantize(kernel)
    assert quantized.values.dtype == np.int8 and quantized.values.shape == (3, 64, 40)
    assert quantized.scales.dtype == np.float32 and quantized.scales.shape == (3, 40)
    assert np.abs(quantized.values).max() == 127
    np.testing.assert_allclose(quantized.scales, np.abs(kernel).max(axis=1) / 127 + (kernel == 0)
                               .all(axis=1), rtol=1e-6)
    error = np.abs(np.asarray(dequantize(quantized)) - kernel)
    assert (error <= quantized.scales[:, None, :] / 2 + 1e-7).all()
    assert (np.asarray(dequantize(quantized))[1, :, 7] == 0).all()


def test_the_int8_product_is_x_times_the_dequantized_kernel():
    rng = np.random.default_rng(1)
    kernel = quantize(rng.standard_normal((96, 50)).astype(np.float32))
    x = rng.standard_normal((4, 96)).astype(np.float32)
    expected = x @ np.asarray(dequantize(kernel))
    np.testing.assert_allclose(np.asarray(int8_dot(x, kernel, jnp.float32)), expected,
                               rtol=1e-5, atol=1e-5)


def teacher_forced_logits(pipeline, checkpoint, codes, dtype):
    """Conditional logits [256, 16384] of the scanned, uncached model in plain JAX, with the
    weights loaded by the product's loader at `dtype` as a CPU runs it."""
    config = DalleBartConfig.load(checkpoint).replace(**runtime_dtypes(dtype, "cpu"))
    params = load_params(checkpoint, config)
    tokens = jnp.asarray(np.concatenate([[BOS], codes[:-1]])[None], jnp.int32)
    ids, mask = pipeline.tokenizer.encode(PROMPT)
    logits = DalleBart(config).apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask),
                                     tokens)
    return np.asarray(logits[0, :, :16384])


def test_int8_logits_stay_within_the_stated_bound_of_fp32(tiny_pipeline_on_each_backend,
                                                          tiny_checkpoint):
    pipeline = tiny_pipeline_on_each_backend
    codes = pipeline.generate_tokens(PROMPT, seed=3, n=1)[0]
    full = teacher_forced_logits(pipeline, tiny_checkpoint, codes, "fp32")
    int8 = teacher_forced_logits(pipeline, tiny_checkpoint, codes, "int8")
    assert not np.array_equal(full, int8)  # it is an approximation, and the test can see it
    assert np.abs(full - int8).mean() < 0.02 * full.std()
    assert np.corrcoef(full.ravel(), int8.ravel())[0, 1] > 0.999


def kernels_of(tree):
    for name, value in tree.items():
        if isinstance(value, dict):
            yield from kernels_of(value)
        elif name == "kernel":
            yield value


def test_the_loader_quantizes_every_dense_kernel_and_keeps_the_rest_in_the_activation_dtype(
        tiny_checkpoint):
    config = DalleBartConfig.load(tiny_checkpoint).replace(**runtime_dtypes("int8", "gpu"))
    assert (config.dtype, config.cache_dtype, config.weight_dtype) == (
        jnp.bfloat16, jnp.bfloat16, jnp.int8)
    params = load_params(tiny_checkpoint, config)
    kernels = list(kernels_of(params))
    assert kernels and all(isinstance(kernel, Int8Kernel) for kernel in kernels)
    stacked = params["model"]["decoder"]["layers"]["FlaxBartDecoderLayers"]["GLU_0"]["Dense_0"][
        "kernel"]
    assert stacked.scales.shape == (config.decoder_layers, config.decoder_ffn_dim)  # per layer
    assert params["model"]["decoder"]["embed_tokens"]["embedding"].dtype == jnp.bfloat16
    assert params["model"]["decoder"]["final_ln"]["bias"].dtype == jnp.bfloat16
    assert runtime_dtypes("int8", "cpu")["dtype"] == jnp.float32  # a CPU has no bf16 arithmetic


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_an_int8_pipeline_generates_the_same_images_on_every_load(backend, request,
                                                                  tiny_checkpoint, jax_cache_dir):
    runs = []
    for _ in range(2):
        pipeline = load_on(backend, request, tiny_checkpoint, dtype="int8",
                           compilation_cache_dir=jax_cache_dir)
        assert pipeline.config.weight_dtype == jnp.int8
        codes = pipeline.generate_tokens(PROMPT, seed=5, n=2)
        runs.append((codes, pipeline.decode_tokens(codes)))
    (codes, images), (codes_again, images_again) = runs
    np.testing.assert_array_equal(codes, codes_again)
    np.testing.assert_array_equal(images, images_again)
    assert images.shape == (2, 256, 256, 3)


def test_the_cpu_kernels_and_plain_jax_sample_the_same_int8_tokens(request, tiny_checkpoint,
                                                                  jax_cache_dir):
    """Both keep attention probabilities in fp32 and read the same bf16 cache, so nothing but
    summation order tells them apart: greedy and seeded tokens agree to the last one."""
    prompts = ["a painting of a fox in the snow", "a cat"]
    tokens = {}
    for backend in MODEL_BACKENDS:
        pipeline = load_on(backend, request, tiny_checkpoint, dtype="int8",
                           compilation_cache_dir=jax_cache_dir)
        tokens[backend] = [pipeline.generate_tokens(prompts, seed=2, n=2, top_k=1),
                           pipeline.generate_tokens(prompts, seed=4, n=2)]
    for xla_codes, cpu_codes in zip(tokens["xla"], tokens["cpu"]):
        np.testing.assert_array_equal(xla_codes, cpu_codes)
