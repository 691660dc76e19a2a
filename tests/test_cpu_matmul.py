"""The CPU matmul kernel against numpy, for the shapes a decode step gives it."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp

from minidalle import cpu_kernels, cpu_matmul

pytestmark = pytest.mark.skipif(not cpu_kernels.ensure_registered(),
                                reason="needs a CPU backend with AVX2/FMA and a C++ compiler")


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
@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16])
def test_several_matrices_of_one_x_in_one_call_equal_numpy(rows, dtype):
    rng = np.random.default_rng(rows)
    k_count, widths = 600, (100, 48, 130)  # 3 + 1 + 3 panels: parts straddle the matrices
    x = rng.standard_normal((rows, k_count), np.float32)
    kernels = [rng.standard_normal((k_count, n), np.float32).astype(dtype) for n in widths]
    call = jax.jit(cpu_matmul.packed_matmuls, static_argnums=2)
    got = call(x, [cpu_matmul.pack(kernel) for kernel in kernels], widths)
    assert [y.shape for y in got] == [(rows, n) for n in widths]
    for y, kernel in zip(got, kernels):
        expected = x.astype(np.float64) @ kernel.astype(np.float64)
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-4, atol=1e-3)
    lowered = call.lower(x, [cpu_matmul.pack(kernel) for kernel in kernels], widths).as_text()
    assert lowered.count(cpu_kernels.MATMUL_TARGET) == 1


def test_one_call_refuses_matrices_of_mixed_dtypes():
    x = np.ones((2, 64), np.float32)
    packed = [cpu_matmul.pack(np.ones((64, 48), np.float32)),
              cpu_matmul.pack(np.ones((64, 48), jnp.bfloat16))]
    with pytest.raises(Exception, match="one dtype"):
        jax.block_until_ready(cpu_matmul.packed_matmuls(x, packed, [48, 48]))
