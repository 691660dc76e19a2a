"""The CPU attention kernel against plain JAX's attention with the causal mask it replaces."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from minidalle.backend import XLA  # noqa: E402
from minidalle.cpu import attention as cpu_attention  # noqa: E402

pytestmark = pytest.mark.usefixtures("cpu_kernels")
attend = XLA.attend


@pytest.mark.parametrize("shape", [(2, 16, 256, 64), (3, 4, 256, 16), (1, 1, 40, 8)])
@pytest.mark.parametrize("visible_count", [1, 7, 8, 9, 33, 40])
@pytest.mark.parametrize("cache_dtype", [jnp.float32, jnp.bfloat16, "bf16 bits"])
def test_it_attends_to_exactly_the_visible_positions(shape, visible_count, cache_dtype):
    batch, heads, length, head_dim = shape
    rng = np.random.default_rng(visible_count)
    queries, keys, values = (
        jnp.asarray(rng.standard_normal(s).astype(np.float32))
        for s in ((batch, heads, 1, head_dim), shape, shape))
    is_bits = cache_dtype == "bf16 bits"
    keys, values = (kv.astype(jnp.bfloat16 if is_bits else cache_dtype) for kv in (keys, values))
    # the same cache values, widened: the kernel computes in fp32 whatever the cache holds
    is_visible = (jnp.arange(length) < visible_count)[None, None, None, :]
    want = attend(queries, keys.astype(jnp.float32), values.astype(jnp.float32), is_visible,
                  head_dim ** -0.5)
    if is_bits:  # how kv_cache stores a bf16 cache on a CPU
        keys, values = (jax.lax.bitcast_convert_type(kv, jnp.uint16) for kv in (keys, values))
    run = jax.jit(cpu_attention.decode_attention, static_argnums=4)
    got = run(queries, keys, values, jnp.int32(visible_count), head_dim ** -0.5)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    # positions past visible_count must not matter at all
    scrambled = (keys.at[:, :, visible_count:].set(17000 if is_bits else 1e3),
                 values.at[:, :, visible_count:].set(49000 if is_bits else -1e3))
    np.testing.assert_array_equal(
        run(queries, *scrambled, jnp.int32(visible_count), head_dim ** -0.5), got)


def test_it_only_takes_what_it_can_do():
    one = jnp.zeros((1, 2, 1, 64), jnp.float32)
    cache = jnp.zeros((1, 2, 8, 64), jnp.float32)
    assert cpu_attention.can_attend(one, cache, cache)
    assert cpu_attention.can_attend(one, cache.astype(jnp.bfloat16), cache.astype(jnp.bfloat16))
    assert not cpu_attention.can_attend(one, cache, cache.astype(jnp.bfloat16))
    assert not cpu_attention.can_attend(one, cache.astype(jnp.float16), cache.astype(jnp.float16))
    assert not cpu_attention.can_attend(jnp.zeros((1, 2, 3, 64)), cache, cache)
    assert not cpu_attention.can_attend(one.astype(jnp.bfloat16), cache, cache)
    small = jnp.zeros((1, 2, 8, 12))
    assert not cpu_attention.can_attend(jnp.zeros((1, 2, 1, 12)), small, small)


def test_each_row_can_see_its_own_prefix():
    """Cross-attention: every prompt has its own length (padding comes last)."""
    rng = np.random.default_rng(5)
    shape = (3, 4, 64, 16)
    queries = jnp.asarray(rng.standard_normal((3, 4, 1, 16)).astype(np.float32))
    keys, values = (jnp.asarray(rng.standard_normal(shape).astype(np.float32)) for _ in "kv")
    lengths = jnp.asarray([5, 64, 1], jnp.int32)
    is_visible = (jnp.arange(64)[None, :] < lengths[:, None])[:, None, None, :]
    want = attend(queries, keys, values, is_visible, 0.25)
    got = jax.jit(cpu_attention.decode_attention, static_argnums=4)(queries, keys, values,
                                                                     lengths, 0.25)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
