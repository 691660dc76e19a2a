"""How the CPU backend stores the KV cache: a bf16 cache as bf16 bits in uint16."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from minidalle.backend import XLA  # noqa: E402
from minidalle.cpu import CPU_KERNELS, kv_cache  # noqa: E402


def test_only_the_cpu_backend_stores_bf16_as_bits():
    assert kv_cache.storage_dtype(jnp.float32) == jnp.float32
    assert kv_cache.storage_dtype(jnp.bfloat16) == kv_cache.BF16_BITS
    assert CPU_KERNELS.cache_zeros((2, 3), jnp.bfloat16).dtype == kv_cache.BF16_BITS
    assert CPU_KERNELS.cache_zeros((2, 3), jnp.float32).dtype == jnp.float32
    assert XLA.cache_zeros((2, 3), jnp.bfloat16).dtype == jnp.bfloat16


@pytest.mark.parametrize("storage", [jnp.float32, jnp.bfloat16, kv_cache.BF16_BITS])
def test_a_write_reads_back_as_the_value_rounded_to_the_cache(storage):
    cache = jnp.zeros((2, 3, 8, 4), storage)
    new = jnp.asarray(np.random.default_rng(1).standard_normal((2, 3, 1, 4)), jnp.float32)
    written = jax.jit(kv_cache.write)(cache, new, (0, 0, 5, 0))
    assert written.dtype == storage
    readable = np.asarray(kv_cache.readable(written).astype(jnp.float32))
    rounded = new if storage == jnp.float32 else new.astype(jnp.bfloat16).astype(jnp.float32)
    np.testing.assert_array_equal(readable[:, :, 5:6], rounded)
    assert not readable[:, :, :5].any() and not readable[:, :, 6:].any()
