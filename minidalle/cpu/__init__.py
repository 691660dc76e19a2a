"""The CPU backend: hand-written kernels for the decode step's hot spots, behind `backend.Backend`.

A CPU decode step is bound by how fast the weights stream in from memory. XLA's CPU code streams
them at a fraction of that for the few rows a step has, so this backend
- packs every dense kernel into panels on huge pages (`packing`) and multiplies them with our
  kernel (`matmul`), the products of one input in one call;
- attends over only the filled positions of the KV cache (`attention`), which it keeps in bf16
  bit patterns when bf16 (`kv_cache`);
- compiles the token loop without YNNPACK.
Weight-only int8 (`quantize.Int8Kernel`) packs and streams its int8 values the same way.
Everything here computes what the plain backend computes, up to float rounding; bench/README.md
has the measured gains. Where the kernels cannot run (no compiler, no AVX2, fp16 weights),
`prepare` leaves the model on the plain backend.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from ..backend import Backend
from ..config import INT8
from . import attention, build, kv_cache, matmul
from .packing import pack_for_cpu

# XLA's CPU backend (jaxlib >= 0.8) hands reductions to YNNPACK, which splits even a 2-row layer
# norm over XLA's thread pool; waking a pool thread on the core where our kernels' crew is
# yielding cost more than the norm. The loop's heavy work is our kernels, so it goes without.
WITHOUT_YNNPACK = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def loop_compiler_options() -> dict:
    """WITHOUT_YNNPACK where this jaxlib knows the option (older ones have no YNNPACK)."""
    try:
        jax.jit(lambda x: x, compiler_options=WITHOUT_YNNPACK).lower(0).compile()
    except RuntimeError:  # "No such compile option"
        return {}
    return WITHOUT_YNNPACK


class CpuKernels(Backend):
    name = "cpu"

    def prepare(self, config, params: dict):
        """Packed weights, fp32 activations and a KV cache in the weights' dtype, or in the
        config's cache_dtype where it names one (int8 weights: a bf16 KV cache).

        A CPU has no bf16 arithmetic: XLA emulates it op by op. The kernels read bf16 or int8
        weights and a bf16 KV cache (half the bytes or less, the point of them here) and compute
        in fp32 anyway, so the activations stay fp32."""
        weights_packable = config.weight_dtype is None or config.weight_dtype == INT8
        if (np.dtype(config.dtype) not in matmul.PACKABLE_DTYPES or not weights_packable
                or not build.ensure_registered()):
            return config, params
        cache_dtype = config.dtype if config.cache_dtype is None else config.cache_dtype
        config = config.replace(dtype="fp32", cache_dtype=cache_dtype, backend=self)
        return config, pack_for_cpu(params)

    def dense(self, x, kernels, features, dtype) -> list:
        if all(matmul.is_packed(kernel) for kernel in kernels):
            return [y.astype(dtype) for y in matmul.packed_matmuls(x, kernels, features)]
        return [matmul.matmul(x, kernel, count, dtype)
                for kernel, count in zip(kernels, features, strict=True)]

    def attend(self, queries, keys, values, is_visible, scale: float, visible_count=None):
        if visible_count is not None and attention.can_attend(queries, keys, values):
            return attention.decode_attention(queries, keys, values, visible_count, scale)
        return super().attend(queries, keys, values, is_visible, scale)

    def cache_zeros(self, shape, dtype):
        return kv_cache.zeros(shape, dtype)

    def cache_write(self, cache, new, start):
        return kv_cache.write(cache, new, start)

    def readable(self, cache):
        return kv_cache.readable(cache)

    def loop_compiler_options(self) -> dict:
        return loop_compiler_options()


CPU_KERNELS = CpuKernels()
