"""How the decoder's self-attention KV cache is stored and written.

A bf16 cache beside the CPU kernels holds its bf16 bit patterns as uint16. XLA's CPU backend has
no bf16 arithmetic and widens every bf16 op to fp32, a dynamic-update-slice too: writing one
position into a bf16 cache converted the whole cache to fp32 and back, in every layer at every
step, which made a 2x2 grid's token loop slower than with an fp32 cache. An integer update is
done in place, and the attention kernel reads the bits as bf16 (`cpu_attention`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .config import DalleBartConfig

BF16_BITS = jnp.dtype(jnp.uint16)


def storage_dtype(config: DalleBartConfig) -> jnp.dtype:
    dtype = jnp.dtype(config.cache_dtype or config.dtype)
    if config.use_cpu_kernels and dtype == jnp.bfloat16:
        return BF16_BITS
    return dtype


def zeros(config: DalleBartConfig, shape) -> jax.Array:
    return jnp.zeros(shape, storage_dtype(config))  # all-zero bits are bf16 +0.0 too


def write(cache, new, start):
    """cache with `new` (any float dtype) written at index tuple `start`."""
    if cache.dtype == BF16_BITS:
        new = jax.lax.bitcast_convert_type(new.astype(jnp.bfloat16), BF16_BITS)
    return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), start)


def readable(cache):
    """The cache as floats, for XLA's own ops."""
    if cache.dtype == BF16_BITS:
        return jax.lax.bitcast_convert_type(cache, jnp.bfloat16)
    return cache
