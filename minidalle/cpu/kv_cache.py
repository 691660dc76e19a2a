"""How the CPU kernels store a bf16 KV cache: as its bit patterns in uint16.

XLA's CPU backend has no bf16 arithmetic and widens every bf16 op to fp32, a dynamic-update-slice
too: writing one position into a bf16 cache converted the whole cache to fp32 and back, in every
layer at every step. An integer update is done in place, and the attention kernel reads the bits
as bf16 (`attention.decode_attention`). Every other dtype is stored as it is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BF16_BITS = jnp.dtype(jnp.uint16)


def storage_dtype(dtype) -> jnp.dtype:
    """What a cache of `dtype` values is stored as."""
    return BF16_BITS if jnp.dtype(dtype) == jnp.bfloat16 else jnp.dtype(dtype)


def zeros(shape, dtype) -> jax.Array:
    return jnp.zeros(shape, storage_dtype(dtype))  # all-zero bits are bf16 +0.0 too


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
