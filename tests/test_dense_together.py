"""Dense layers that read the same x run as one CPU kernel call once their kernels are packed."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from minidalle import cpu_kernels
from minidalle.blocks import GLU, FlaxBartAttention
from minidalle.checkpoint import pack_for_cpu
from minidalle.config import DalleBartConfig

pytestmark = pytest.mark.skipif(not cpu_kernels.ensure_registered(),
                                reason="needs a CPU backend with AVX2/FMA and a C++ compiler")

CONFIG = DalleBartConfig(d_model=64, decoder_attention_heads=4, encoder_attention_heads=4,
                         decoder_ffn_dim=100, encoder_ffn_dim=100, use_cpu_kernels=True)


def packed(params):
    """The module's params with every kernel packed, as `pack_for_cpu` packs a model's."""
    return pack_for_cpu({"model": params, "lm_head": {"kernel": np.zeros((2, 2), np.float32)}})[
        "model"]


def kernel_calls(function, *args) -> int:
    return jax.jit(function).lower(*args).as_text().count(cpu_kernels.MATMUL_TARGET)


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
