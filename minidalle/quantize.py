"""Weight-only int8: each dense kernel as int8 values and one fp32 scale per output column.

Why: a decode step reads every weight once, so on a GPU (and on a CPU, which streams weights from
memory) the bytes per weight decide both the memory a model needs and the time a step takes.
Mega's transformer is 2.6 B parameters: 10.4 GB in fp32, 5.2 GB in bf16, about 2.7 GB this way.

Per output column (symmetric, absmax): column n of kernel W [K, N] is stored as round(W[:, n] /
s[n]) with s[n] = max|W[:, n]| / 127, so x·W = (x·Q)·s exactly up to the rounding of Q. Only
the dense kernels are quantized (the lm_head too); embeddings, norms and biases stay in the
activations' dtype. The activations never become int8, so this is an approximation of the
weights only; bench/bench_int8.py measures what it costs against bf16.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

INT8_MAX = 127


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Int8Kernel:
    """A dense kernel [..., K, N] as int8 `values` [..., K, N] and fp32 `scales` [..., N].

    A pytree, so stacked layers slice (`checkpoint.unscan_layers`), `jax.device_put` and `jit`
    carry it like the plain array it replaces."""

    values: jax.Array | np.ndarray
    scales: jax.Array | np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    @property
    def ndim(self) -> int:
        return self.values.ndim


def quantize(kernel: np.ndarray) -> Int8Kernel:
    """A float kernel [..., K, N] (numpy, any float dtype) → Int8Kernel, scales per column of N.

    An all-zero column gets scale 1 (its values are 0 either way), so nothing divides by zero."""
    kernel32 = np.asarray(kernel, np.float32)
    absmax = np.max(np.abs(kernel32), axis=-2)
    scales = np.where(absmax > 0, absmax / INT8_MAX, 1).astype(np.float32)
    values = np.rint(kernel32 / scales[..., None, :])
    return Int8Kernel(np.clip(values, -INT8_MAX, INT8_MAX).astype(np.int8), scales)


def quantize_layer_by_layer(kernel: np.ndarray, allocate=np.empty) -> Int8Kernel:
    """`quantize` of stacked kernels [..., K, N] one layer at a time: the same result, with fp32
    temporaries of one layer rather than of the stack (Mega's GLU stack is 0.8 GB in fp32).
    `allocate(shape, dtype)` gives the arrays the result is written to."""
    values = allocate(kernel.shape, np.int8)
    scales = allocate(kernel.shape[:-2] + kernel.shape[-1:], np.float32)
    for index in np.ndindex(kernel.shape[:-2]):
        layer = quantize(kernel[index])
        values[index], scales[index] = layer.values, layer.scales
    return Int8Kernel(values, scales)


def dequantize(kernel: Int8Kernel, dtype=jnp.float32):
    """The kernel as floats: values·scales (for tests and for backends with no int8 product)."""
    return (kernel.values.astype(jnp.float32) * kernel.scales[..., None, :]).astype(dtype)


def is_int8(kernel) -> bool:
    return isinstance(kernel, Int8Kernel)


def int8_dot(x, kernel: Int8Kernel, dtype):
    """x [..., K] · kernel → [..., N] in dtype: the int8 values widened to dtype inside the product
    (XLA can fuse the convert into the dot on a GPU), accumulated in fp32, then scaled per column."""
    product = jnp.dot(x.astype(dtype), kernel.values.astype(dtype),
                      preferred_element_type=jnp.float32)
    return (product * kernel.scales).astype(dtype)
