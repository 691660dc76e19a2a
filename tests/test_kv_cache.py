"""How the KV cache is stored: a bf16 cache beside the CPU kernels as bf16 bits in uint16."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from minidalle import kv_cache  # noqa: E402
from minidalle.config import DalleBartConfig  # noqa: E402


def test_storage_follows_the_cache_dtype_and_the_kernels():
    config = DalleBartConfig()
    assert kv_cache.storage_dtype(config) == jnp.float32
    assert kv_cache.storage_dtype(config.replace(dtype="bf16")) == jnp.bfloat16
    on_cpu = config.replace(cache_dtype="bf16", use_cpu_kernels=True)
    assert kv_cache.storage_dtype(on_cpu) == kv_cache.BF16_BITS
    assert kv_cache.storage_dtype(config.replace(use_cpu_kernels=True)) == jnp.float32


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
