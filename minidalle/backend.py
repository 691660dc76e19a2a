"""The one seam where a backend may compute the model's heavy operations its own way.

The architecture modules (blocks, decoder, generate) run every dense product, every attention and
every write to the KV cache through `config.backend`, the way nanoGPT calls
`F.scaled_dot_product_attention` and lets PyTorch pick a kernel. `Backend` itself computes them
with plain JAX: the path XLA compiles for a GPU, and the reference every other backend must match.

`backend_named("auto")` picks the hand-written CPU kernels of `minidalle/cpu` on a CPU. That is
the only import of the package: delete `minidalle/cpu/` and the import below, and the pipeline
runs on plain JAX everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from .quantize import int8_dot, is_int8

BACKEND_NAMES = ("auto", "xla", "cpu")


class Backend:
    """Plain JAX. A backend subclasses this and overrides what it computes better."""

    name = "xla"

    def prepare(self, config, params: dict):
        """(config, params) as this backend runs them; params are the unscanned numpy tree
        (`checkpoint.unscan_layers`), the backend's own to change in place. Plain JAX reads
        the published layout as it is."""
        return config, params

    def dense(self, x, kernels: Sequence, features: Sequence[int], dtype) -> list:
        """x [..., K] times each kernel (as `prepare` laid it out; published: [K, N_i]) → a list
        of [..., N_i] in dtype. The products that read one x come together, so a backend may
        compute them in one call (a layer's q, k and v; the GLU's two inputs). A kernel may be
        a `quantize.Int8Kernel` (weight-only int8)."""
        return [int8_dot(x, kernel, dtype) if is_int8(kernel)
                else jnp.dot(x.astype(dtype), kernel.astype(dtype), preferred_element_type=dtype)
                for kernel in kernels]

    def attend(self, queries, keys, values, is_visible, scale: float, visible_count=None):
        """Softmax attention. queries [B,H,Tq,D], keys/values [B,H,Tk,D] (head-major, so neither
        product transposes the KV cache), is_visible bool broadcastable to [B,1,Tq,Tk]; logits,
        softmax and probabilities in fp32 whatever the weights (as in the CPU kernels, so both
        backends sample the same tokens from a bf16 cache). visible_count: set for one decode
        step, where is_visible is exactly "key position < visible_count" (an int, or one per
        row), so a backend may read only those positions. Returns [B,H,Tq,D]."""
        keys, values = self.readable(keys), self.readable(values)
        logits = jnp.einsum("bhqd,bhkd->bhqk", queries, keys, preferred_element_type=jnp.float32)
        logits = jnp.where(is_visible, logits * scale, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bhkd->bhqd", probs, values.astype(jnp.float32))
        return out.astype(queries.dtype)

    def cache_zeros(self, shape, dtype) -> jax.Array:
        """An empty KV cache of shape [..., S, D] for values of dtype."""
        return jnp.zeros(shape, dtype)

    def cache_write(self, cache, new, start):
        """cache with `new` (any float dtype) written at index tuple `start`."""
        return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), start)

    def readable(self, cache):
        """A KV cache (or any keys/values) as floats that jnp ops can read."""
        return cache

    def loop_compiler_options(self) -> dict:
        """XLA options for the compiled token loop."""
        return {}


XLA = Backend()


def backend_named(name: str = "auto") -> Backend:
    """"xla": plain JAX; "cpu": minidalle/cpu's kernels (they fall back to plain JAX where
    they cannot run: see `CpuKernels.prepare`); "auto": the CPU kernels on a CPU, else XLA."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; use one of {', '.join(BACKEND_NAMES)}")
    if name == "xla" or (name == "auto" and jax.default_backend() != "cpu"):
        return XLA
    from .cpu import CPU_KERNELS  # the seam's one import of minidalle/cpu

    return CPU_KERNELS
