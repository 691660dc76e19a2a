"""Single-token self-attention over the KV cache on a CPU, as an XLA FFI custom call.

The decode step's attention as einsums over the masked cache ran far below the memory bandwidth
and read every cache position, filled or not. `kernels/decode_attention.cc` reads only the filled
positions (`build` builds and registers it). `CpuKernels.attend` uses it where a step adds one
token: for self-attention (the cache's filled length) and cross-attention (each prompt's length).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .build import ATTENTION_TARGET

HEAD_DIM_MULTIPLE = 8  # the kernel's vectors hold 8 floats
MAX_HEAD_DIM = 64  # kMaxChunks · 8 in decode_attention.cc


# fp32, bf16, and bf16 bit patterns (`kv_cache.BF16_BITS`, how a bf16 cache is stored on a CPU)
CACHE_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.uint16))


def can_attend(queries, keys, values) -> bool:
    """Whether the kernel handles these shapes and dtypes: one fp32 query, D a multiple of 8,
    keys and values of one of CACHE_DTYPES."""
    return (queries.shape[2] == 1 and queries.dtype == jnp.float32
            and keys.dtype in CACHE_DTYPES and values.dtype == keys.dtype
            and queries.shape[-1] % HEAD_DIM_MULTIPLE == 0
            and queries.shape[-1] <= MAX_HEAD_DIM)


def decode_attention(queries, keys, values, visible_count, scale: float):
    """queries [B,H,1,D] (fp32) attend to positions < visible_count of keys/values [B,H,S,D]
    (CACHE_DTYPES); visible_count is one int32, or [B] (one per row). Returns [B,H,1,D] fp32,
    what `blocks.attend` gives with the matching prefix mask."""
    batch, heads, _, head_dim = queries.shape
    call = jax.ffi.ffi_call(ATTENTION_TARGET,
                            jax.ShapeDtypeStruct((batch, heads, head_dim), jnp.float32))
    out = call(queries.reshape(batch, heads, head_dim), keys, values,
               jnp.asarray(visible_count, jnp.int32), scale=np.float32(scale))
    return out[:, :, None, :]
