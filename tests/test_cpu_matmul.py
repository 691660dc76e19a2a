"""The CPU matmul kernel against numpy, for the shapes a decode step gives it."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp

from minidalle import quantize
from minidalle.cpu import build as cpu_kernels
from minidalle.cpu import matmul as cpu_matmul

pytestmark = pytest.mark.usefixtures("cpu_kernels")


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 8, 18])
@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16])
def test_packed_matmul_equals_numpy(rows, dtype):
    rng = np.random.default_rng(rows)
    k_count, n_count = 1100, 100  # K spans three 512-blocks; N is not a multiple of 48
    x = rng.standard_normal((rows, k_count), np.float32)
    kernel = rng.standard_normal((k_count, n_count), np.float32).astype(dtype)
    expected = x.astype(np.float64) @ kernel.astype(np.float64)
    got = jax.jit(cpu_matmul.packed_matmul, static_argnums=2)(x, cpu_matmul.pack(kernel), n_count)
    assert got.shape == (rows, n_count) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 8, 9, 16])
@pytest.mark.parametrize("k_count, n_count", [(1100, 100), (64, 48), (700, 200)])
def test_packed_int8_matmul_equals_the_dequantized_product(rows, k_count, n_count):
    """Weight-only int8: the kernel's x·Q times the scales is x·(Q·s) up to fp32 rounding, and
    what the plain backend computes (`quantize.int8_dot`)."""
    rng = np.random.default_rng(rows + k_count)
    x = rng.standard_normal((rows, k_count), np.float32)
    kernel = quantize.quantize(rng.standard_normal((k_count, n_count), np.float32))
    packed = cpu_matmul.pack(kernel)
    assert quantize.is_int8(packed) and packed.values.dtype == np.int8
    assert cpu_matmul.is_packed(packed)
    got = jax.jit(cpu_matmul.packed_matmul, static_argnums=2)(x, packed, n_count)
    assert got.shape == (rows, n_count) and got.dtype == jnp.float32
    dense = np.asarray(quantize.dequantize(kernel), np.float64)
    np.testing.assert_allclose(np.asarray(got), x.astype(np.float64) @ dense, rtol=1e-4,
                               atol=1e-3)
    np.testing.assert_allclose(np.asarray(got), quantize.int8_dot(x, kernel, jnp.float32),
                               rtol=1e-4, atol=1e-3)


def test_matmul_takes_plain_and_packed_int8_kernels_alike():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64), np.float32)
    kernel = quantize.quantize(rng.standard_normal((64, 70), np.float32))
    plain = cpu_matmul.matmul(x, kernel, 70, jnp.float32)
    packed = cpu_matmul.matmul(x, cpu_matmul.pack(kernel), 70, jnp.float32)
    np.testing.assert_allclose(np.asarray(packed), np.asarray(plain), rtol=1e-5, atol=1e-5)


def test_pack_pads_to_whole_panels():
    kernel = np.arange(3 * 50, dtype=np.float32).reshape(3, 50)
    packed = cpu_matmul.pack(kernel)
    assert packed.shape == (2, 3, 48)
    assert packed[0, 1, 5] == kernel[1, 5] and packed[1, 2, 1] == kernel[2, 49]
    assert not packed[1, :, 2:].any()


def test_matmul_takes_plain_and_packed_kernels_alike():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64), np.float32)
    kernel = rng.standard_normal((64, 70), np.float32)
    plain = cpu_matmul.matmul(x, kernel, 70, jnp.float32)
    packed = cpu_matmul.matmul(x, cpu_matmul.pack(kernel), 70, jnp.float32)
    np.testing.assert_allclose(np.asarray(packed), np.asarray(plain), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [2, 8])
@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16, np.int8])
def test_several_matrices_of_one_x_in_one_call_equal_numpy(rows, dtype):
    rng = np.random.default_rng(rows)
    k_count, widths = 600, (100, 48, 130)  # 3 + 1 + 3 panels: parts straddle the matrices
    x = rng.standard_normal((rows, k_count), np.float32)
    kernels = [rng.standard_normal((k_count, n), np.float32).astype(dtype) for n in widths]
    if dtype == np.int8:
        kernels = [quantize.quantize(kernel) for kernel in kernels]
    call = jax.jit(cpu_matmul.packed_matmuls, static_argnums=2)
    got = call(x, [cpu_matmul.pack(kernel) for kernel in kernels], widths)
    assert [y.shape for y in got] == [(rows, n) for n in widths]
    for y, kernel in zip(got, kernels):
        dense = quantize.dequantize(kernel) if dtype == np.int8 else kernel
        expected = x.astype(np.float64) @ np.asarray(dense, np.float64)
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-4, atol=1e-3)
    lowered = call.lower(x, [cpu_matmul.pack(kernel) for kernel in kernels], widths).as_text()
    assert lowered.count(cpu_kernels.MATMUL_TARGET) == 1


@pytest.mark.parametrize("other", [jnp.bfloat16, np.int8])
def test_one_call_refuses_matrices_of_mixed_dtypes(other):
    x = np.ones((2, 64), np.float32)
    packed = [cpu_matmul.pack(np.ones((64, 48), np.float32)),
              cpu_matmul.pack(np.ones((64, 48), other))]
    with pytest.raises(Exception, match="one dtype"):
        jax.block_until_ready(cpu_matmul.packed_matmuls(x, packed, [48, 48]))


@pytest.fixture(scope="module")
def matmul_of_each_isa():
    """The kernel built for every instruction set this CPU runs, each registered under its own
    target name: {isa: target}. Built where the pipeline's own build is cached, which is one of
    them."""
    folder = cpu_kernels.default_build_folder()
    targets = {isa: f"test_skinny_matmul_{isa}" for isa in cpu_kernels.supported_isas()}
    for isa, target in targets.items():
        cpu_kernels.register(cpu_kernels.compile_kernels(folder, isa),
                             {cpu_kernels.SYMBOL_FROM_TARGET[cpu_kernels.MATMUL_TARGET]: target})
    return targets


@pytest.mark.parametrize("rows", [1, 2, 5, 8, 9, 18])
@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16, np.int8])
def test_every_build_this_cpu_runs_gives_the_avx2_builds_bits(matmul_of_each_isa, rows, dtype):
    """Every build adds each column's products in k order, so images don't depend on the CPU
    (on an AVX-512 CPU this compares the AVX-512 build with the AVX2 one). int8: the raw
    product x·Q, before the scales."""
    rng = np.random.default_rng(rows)
    k_count, n_count = 1100, 150  # three K blocks; a cut last panel
    x = rng.standard_normal((rows, k_count), np.float32)
    weights = (rng.integers(-127, 128, (k_count, n_count), np.int8) if dtype == np.int8
               else rng.standard_normal((k_count, n_count), np.float32).astype(dtype))
    packed = cpu_matmul.pack(weights)
    shape = jax.ShapeDtypeStruct((rows, n_count), jnp.float32)
    outputs = {isa: np.asarray(jax.ffi.ffi_call(target, [shape])(x, packed)[0])
               for isa, target in matmul_of_each_isa.items()}
    expected = x.astype(np.float64) @ np.asarray(packed_to_dense(packed, n_count), np.float64)
    scale = 127 if dtype == np.int8 else 1  # int8 values are up to 127
    for output in outputs.values():
        np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-3 * scale)
        np.testing.assert_array_equal(output, outputs["avx2"])


def packed_to_dense(packed: np.ndarray, n_count: int) -> np.ndarray:
    """pack's inverse: panels [P, K, 48] → [K, N]."""
    panels = np.asarray(packed)
    if panels.dtype == np.dtype(jnp.bfloat16):
        panels = panels[:, :, np.argsort(cpu_matmul.BF16_INTERLEAVE)]
    return panels.transpose(1, 0, 2).reshape(panels.shape[1], -1)[:, :n_count]
