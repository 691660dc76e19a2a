"""The CPU backend as the model sees it: Dense layers that read the same x run as one kernel
call once their kernels are packed, and the token loop is compiled without YNNPACK."""

import copy
import gc
import itertools
import weakref

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp

from minidalle.blocks import GLU, FlaxBartAttention
from minidalle.config import DalleBartConfig
from minidalle.cpu import CPU_KERNELS, build, loop_compiler_options
from minidalle.cpu.packing import pack_for_cpu
from minidalle.pipeline import Pipeline
from minidalle.quantize import is_int8
from tests.conftest import load_on

pytestmark = pytest.mark.usefixtures("cpu_kernels")

CONFIG = DalleBartConfig(d_model=64, decoder_attention_heads=4, encoder_attention_heads=4,
                         decoder_ffn_dim=100, encoder_ffn_dim=100, backend=CPU_KERNELS)
PROMPT = "a painting of a fox in the snow"


def packed(params):
    """A copy of the module's params with every kernel packed, as `pack_for_cpu` packs a
    model's (in place)."""
    return pack_for_cpu({"model": copy.deepcopy(params),
                         "lm_head": {"kernel": np.zeros((2, 2), np.float32)}})["model"]


def kernel_calls(function, *args) -> int:
    return jax.jit(function).lower(*args).as_text().count(build.MATMUL_TARGET)


def test_glu_runs_its_two_input_matrices_as_one_call():
    module = GLU(CONFIG, CONFIG.decoder_ffn_dim)
    x = np.random.default_rng(0).standard_normal((2, 1, 64)).astype(np.float32)
    params = module.init(jax.random.PRNGKey(0), x)["params"]

    def run(params, x):
        return module.apply({"params": params}, x)

    assert kernel_calls(run, packed(params), x) == 2  # Dense_0 with Dense_1, then Dense_2
    np.testing.assert_allclose(np.asarray(run(packed(params), x)), np.asarray(run(params, x)),
                               rtol=1e-5, atol=1e-6)


def test_self_attention_projects_queries_keys_and_values_in_one_call():
    module = FlaxBartAttention(CONFIG, CONFIG.decoder_attention_heads)
    x = np.random.default_rng(1).standard_normal((2, 1, 64)).astype(np.float32)
    params = module.init(jax.random.PRNGKey(0), x,
                         method=FlaxBartAttention.project_queries_keys_values)["params"]

    def project(params, x):
        return module.apply({"params": params}, x,
                            method=FlaxBartAttention.project_queries_keys_values)

    assert kernel_calls(project, packed(params), x) == 1
    for fused, plain in zip(project(packed(params), x), project(params, x), strict=True):
        assert fused.shape == (2, 4, 1, 16)
        np.testing.assert_allclose(np.asarray(fused), np.asarray(plain), rtol=1e-5, atol=1e-6)


def test_the_token_loop_is_compiled_without_ynnpack(tiny_checkpoint, tiny_pipeline, monkeypatch):
    """YNNPACK's thread-pool hand-offs cost the CPU loop 1 ms a step (cpu.WITHOUT_YNNPACK)."""
    from minidalle import generate
    from minidalle.random_weights import random_params

    has_ynnpack = bool(loop_compiler_options())  # older jaxlibs have none to switch off
    # A GLU as wide as mini's: XLA hands a 2-row layer norm of this width to YNNPACK.
    config = DalleBartConfig.load(tiny_checkpoint).replace(decoder_ffn_dim=2730)
    pipeline = Pipeline.from_params(config, random_params(config, 0), tiny_pipeline.vqgan_config,
                                    tiny_pipeline.vqgan_params, tiny_pipeline.tokenizer,
                                    backend="cpu")
    loop = generate.compiled_steps(CPU_KERNELS)
    plain_loop = jax.jit(generate.run_steps, static_argnames=generate.STEP_STATIC_ARGNAMES)
    compiled, plain = [], []

    def spy(*args, **kwargs):
        compiled.append(loop.lower(*args, **kwargs).compile().as_text())
        plain.append(plain_loop.lower(*args, **kwargs).compile().as_text())
        return loop(*args, **kwargs)

    monkeypatch.setattr(generate, "compiled_steps", lambda backend: spy)
    pipeline.generate_tokens(PROMPT, seed=1, n=1)
    assert any("ynn_fusion" in text for text in plain) == has_ynnpack  # what the option removes
    assert compiled and not any("ynn_fusion" in text for text in compiled)


def test_int8_pipeline_streams_int8_panels_with_fp32_activations_and_a_bf16_cache(
        request, tiny_checkpoint, jax_cache_dir):
    pipeline = load_on("cpu", request, tiny_checkpoint, dtype="int8",
                       compilation_cache_dir=jax_cache_dir)
    layer = pipeline.params["model"]["decoder"]["layers"]["FlaxBartDecoderLayer_0"]
    encoder_layer = pipeline.params["model"]["encoder"]["layers"]["FlaxBartEncoderLayer_0"]
    for kernel in (layer["GLU_0"]["Dense_0"]["kernel"], encoder_layer["GLU_0"]["Dense_0"]["kernel"],
                   pipeline.params["lm_head"]["kernel"]):
        assert is_int8(kernel) and kernel.values.dtype == np.int8 and kernel.values.ndim == 3
        assert kernel.scales.dtype == np.float32
    assert pipeline.config.dtype == np.float32 and pipeline.config.cache_dtype == jnp.bfloat16
    first = pipeline.generate_tokens(PROMPT, seed=2, n=1)
    np.testing.assert_array_equal(pipeline.generate_tokens(PROMPT, seed=2, n=1), first)


def test_int8_on_the_cpu_kernels_gives_the_plain_backends_greedy_tokens(tiny_checkpoint,
                                                                          tiny_pipeline):
    """The same int8 weights, the same tokens, here with an fp32 KV cache (tests/test_int8.py
    has the bf16 one a pipeline gives int8)."""
    from minidalle.checkpoint import load_params

    config = DalleBartConfig.load(tiny_checkpoint).replace(dtype="fp32", weight_dtype="int8")
    codes = {}
    for backend in ("xla", "cpu"):
        pipeline = Pipeline.from_params(config, load_params(tiny_checkpoint, config),
                                        tiny_pipeline.vqgan_config, tiny_pipeline.vqgan_params,
                                        tiny_pipeline.tokenizer, backend=backend)
        assert pipeline.config.backend.name == backend
        codes[backend] = pipeline.generate_tokens([PROMPT, "a cat"], seed=2, n=2, top_k=1)
    np.testing.assert_array_equal(codes["cpu"], codes["xla"])


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_packing_frees_each_loaded_tensor_before_packing_the_next(tiny_checkpoint, dtype,
                                                                   monkeypatch):
    """Loading never holds the model packed and unpacked at once: `Pipeline.ready_weights` takes
    the loaded tree over, packs each stacked tensor's layers together, and each tensor is gone
    once they are."""
    from minidalle.checkpoint import load_params
    from minidalle.config import runtime_dtypes
    from minidalle.cpu import matmul, packing

    def kernels(tree):
        return [*(model[name] for model, name in packing.leaf_slots(tree["model"])
                  if name == "kernel"), tree["lm_head"]["kernel"]]

    def buffer(kernel):
        values = kernel.values if is_int8(kernel) else kernel
        return values if values.base is None else values.base

    config = DalleBartConfig.load(tiny_checkpoint).replace(**runtime_dtypes(dtype, "cpu"))
    params = load_params(tiny_checkpoint, config)
    loaded = {id(buffer(kernel)): weakref.ref(buffer(kernel))
              for kernel in kernels(params)}
    packed_buffers, alive_while_packing = [], []

    def pack_and_count(kernel, allocate):
        packed_buffers.append(id(buffer(kernel)))
        gc.collect()
        alive_while_packing.append(sum(ref() is not None for ref in loaded.values()))
        return matmul_pack(kernel, allocate)

    matmul_pack = packing.pack
    monkeypatch.setattr(packing, "pack", pack_and_count)
    _, weights = Pipeline.ready_weights(config, params, "cpu")
    assert params == {}
    assert set(packed_buffers) == set(loaded) and len(loaded) > 10
    # one stacked tensor's slices after another: never two tensors half packed
    assert len(list(itertools.groupby(packed_buffers))) == len(loaded)
    unpacked_after = [len(set(packed_buffers[call:])) for call in range(len(packed_buffers))]
    assert alive_while_packing == unpacked_after
    gc.collect()
    assert all(ref() is None for ref in loaded.values())
    assert all(matmul.is_packed(kernel) for kernel in kernels(weights))


def test_from_params_leaves_the_callers_weights_as_they_were(tiny_checkpoint, tiny_pipeline):
    """Only `Pipeline.load` hands its freshly loaded tree over; a caller's own tree stays whole."""
    from minidalle.checkpoint import load_params

    config = DalleBartConfig.load(tiny_checkpoint).replace(dtype="bf16")
    params = load_params(tiny_checkpoint, config)
    leaves_before, structure_before = jax.tree.flatten(params)
    pipeline = Pipeline.from_params(config, params, tiny_pipeline.vqgan_config,
                                    tiny_pipeline.vqgan_params, tiny_pipeline.tokenizer,
                                    backend="cpu")
    assert pipeline.config.backend is CPU_KERNELS
    leaves_after, structure_after = jax.tree.flatten(params)
    assert structure_after == structure_before
    assert all(after is before for after, before in zip(leaves_after, leaves_before, strict=True))
