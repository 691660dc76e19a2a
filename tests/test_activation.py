"""The GLU's activation: "gelu" is the exact x·Φ(x) (erf), "gelu_new" the tanh form (§1.2)."""

import math

import jax.numpy as jnp
import numpy as np

from minidalle.blocks import activation
from minidalle.config import DalleBartConfig


def float64_gelu(x):
    return np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])


def test_gelu_is_exact_to_float32_rounding_across_its_range():
    x = np.linspace(-12, 12, 48001).astype(np.float32)
    got = np.asarray(activation(DalleBartConfig(activation_function="gelu"))(jnp.asarray(x)))
    expected = float64_gelu(x)
    # relative to the value where it is large, absolute where the tail goes to 0
    assert np.all(np.abs(got - expected) <= 2e-6 + 2e-7 * np.abs(expected))
    assert got[0] == 0 and got[-1] == np.float32(12)


def test_gelu_new_is_the_tanh_form_which_differs_from_exact():
    x = np.linspace(-4, 4, 801).astype(np.float32)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    got = np.asarray(activation(DalleBartConfig(activation_function="gelu_new"))(jnp.asarray(x)))
    np.testing.assert_allclose(got, tanh_form, atol=2e-6)
    assert np.abs(got - float64_gelu(x)).max() > 1e-4  # so the exact test above can tell them apart


def test_gelu_keeps_bf16_in_bf16():
    x = jnp.linspace(-3, 3, 64, dtype=jnp.bfloat16)
    got = activation(DalleBartConfig(activation_function="gelu"))(x)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), float64_gelu(np.asarray(x, np.float32)),
                               atol=2e-2, rtol=1e-2)
