"""A CPU matmul for the few rows of a decoder step, as an XLA FFI custom call.

XLA's CPU dot streams weights at the memory's speed only for a single row; a decode step has two
rows per image (super-conditioning) and ran at a third of the bandwidth. `kernels/skinny_matmul.cc`
streams pre-packed weight panels with AVX2, or AVX-512 where the CPU has it, instead (its header
says how; `build` builds and registers it); both builds give the same bits. Weight-only int8
(`quantize.Int8Kernel`) packs its int8 values the same way and keeps its fp32 scales [N]: the
kernel computes x·Q in fp32 and the scales multiply its output here, (x·Q)·s as
`quantize.int8_dot` computes it. Where that is impossible (no compiler, no AVX2, a GPU backend,
fp16 weights) nothing is packed and XLA's dot runs instead: same results up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..quantize import Int8Kernel, int8_dot, is_int8
from .build import MATMUL_TARGET

PANEL_WIDTH = 48  # kPanel in skinny_matmul.cc
PACKABLE_DTYPES = (np.dtype(np.float32), np.dtype(jnp.bfloat16))


# bf16 columns within each group of 16, as the kernel reads them: 32-bit word i of a group holds
# column i (low half) and column 8 + i (high half), so one load yields both fp32 vectors.
BF16_INTERLEAVE = np.concatenate([np.stack([np.arange(8), np.arange(8, 16)], 1).ravel() + 16 * group
                                  for group in range(PANEL_WIDTH // 16)])


def packed_shape(kernel_shape: tuple[int, int]) -> tuple[int, int, int]:
    """[K, N] → [P, K, 48]: the panels `pack` writes."""
    k_count, n_count = kernel_shape
    return -(-n_count // PANEL_WIDTH), k_count, PANEL_WIDTH


def storage_dtype(kernel) -> np.dtype:
    """The dtype of the panels a kernel packs to: its own, or int8 for an Int8Kernel."""
    return np.dtype(kernel.values.dtype if is_int8(kernel) else kernel.dtype)


def pack(kernel, allocate=np.empty):
    """Dense kernel [K, N] → panels [P, K, 48] (N zero-padded to P·48), same dtype; bf16 columns
    are interleaved within each group of 16 (BF16_INTERLEAVE), fp32 and int8 in column order. An
    Int8Kernel → an Int8Kernel of packed values and its scales [N] as they are.
    `allocate(shape, dtype)` gives the array the panels are written to
    (`huge_pages.HugePageArena.empty` for a model's weights)."""
    if is_int8(kernel):
        return Int8Kernel(pack(np.asarray(kernel.values), allocate),
                          np.asarray(kernel.scales, np.float32))
    k_count, n_count = kernel.shape
    shape = packed_shape(kernel.shape)
    panel_count = shape[0]
    padded = np.zeros((k_count, panel_count * PANEL_WIDTH), kernel.dtype)
    padded[:, :n_count] = kernel
    panels = padded.reshape(k_count, panel_count, PANEL_WIDTH).transpose(1, 0, 2)
    if kernel.dtype == np.dtype(jnp.bfloat16):
        panels = panels[:, :, BF16_INTERLEAVE]
    packed = allocate(shape, kernel.dtype)
    packed[...] = panels
    return packed


def is_packed(kernel) -> bool:
    """Whether a kernel (an array or an Int8Kernel, whose ndim is its values') is panels."""
    return kernel.ndim == 3


def packed_matmuls(x, packed: Sequence, features: Sequence[int]) -> list:
    """x [..., K] · each packed kernel → a list of [..., features_i] fp32, in one kernel call:
    the matrices that read the same x (a layer's q, k and v) share one hand-off to the crew."""
    rows = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    shapes = [jax.ShapeDtypeStruct((rows.shape[0], count), jnp.float32) for count in features]
    call = jax.ffi.ffi_call(MATMUL_TARGET, shapes)
    panels = [kernel.values if is_int8(kernel) else kernel for kernel in packed]
    return [scaled(y, kernel).reshape(x.shape[:-1] + (count,))
            for y, kernel, count in zip(call(rows, *panels), packed, features, strict=True)]


def scaled(y, kernel):
    """The kernel's output as the product with the kernel: times the scales for int8."""
    return y * kernel.scales if is_int8(kernel) else y


def packed_matmul(x, packed, features: int):
    """x [..., K] · packed kernel → [..., features] fp32."""
    return packed_matmuls(x, [packed], [features])[0]


def matmul(x, kernel, features: int, dtype):
    """x · kernel for a plain [K, N] kernel or a packed one, computed in and returned as dtype.

    A plain bf16 kernel under fp32 activations (the encoder beside the CPU kernels) is widened
    rather than the activations narrowed: a CPU has no bf16 arithmetic, and XLA's emulated bf16
    dot took twice as long as converting the kernel and running its fp32 one."""
    if is_packed(kernel):
        return packed_matmul(x, kernel, features).astype(dtype)
    if is_int8(kernel):
        return int8_dot(x, kernel, dtype)
    return jnp.dot(x.astype(dtype), kernel.astype(dtype), preferred_element_type=dtype)
