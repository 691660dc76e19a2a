"""The blocks DalleBart's encoder and decoder layers are built from: norms, attention, GLU.

Shapes and switches follow shared/reference/dalle-mini-architecture.md §1.2 and §3. Submodule names
are the ones the published checkpoints use (nn.compact auto-names such as `Dense_0`, or the
attribute names of HF's `FlaxBartAttention`), so `flax_model.msgpack` loads without renaming.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from .backend import Backend
from .config import DalleBartConfig

LAYER_NORM_EPSILON = 1e-5  # §1.2: every LayerNorm in DalleBart
SQRT_HALF = 0.7071067811865476


class RMSNorm(nn.Module):
    """x·rsqrt(mean(x²)+eps)·scale: no mean subtraction, no bias (`ln_type="rmsnorm"`)."""

    dtype: jnp.dtype = jnp.float32
    use_scale: bool = True

    @nn.compact
    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + LAYER_NORM_EPSILON)
        if self.use_scale:
            normed = normed * self.param("scale", nn.initializers.ones, (x.shape[-1],))
        return normed.astype(self.dtype)


def make_norm(config: DalleBartConfig, is_scaled: bool, name: str | None = None) -> nn.Module:
    """A norm as `ln_type` asks; `is_scaled=False` gives the bias-only LayerNorm (§1.2)."""
    if config.ln_type == "rmsnorm":
        return RMSNorm(dtype=config.dtype, use_scale=is_scaled, name=name)
    return nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, use_scale=is_scaled, dtype=config.dtype,
                        name=name)


def feeds_dense_is_scaled(config: DalleBartConfig) -> bool:
    """Norms that feed a dense layer are bias-only unless `force_ln_scale` (§1.2)."""
    return config.force_ln_scale


def activation(config: DalleBartConfig):
    if config.activation_function == "relu":
        return nn.relu
    if config.activation_function == "gelu_new":
        return lambda x: nn.gelu(x, approximate=True)
    return exact_gelu


def exact_gelu(x):
    """x·Φ(x) through erf, as torch and the reference's "gelu" compute it (not the tanh form).

    Not `nn.gelu(approximate=False)`: that goes through erfc, which XLA's CPU backend lowers to
    far more work (bench/README.md). Both are within 1e-6 of float64 (tests/test_activation.py)."""
    half_x = x * jnp.asarray(0.5, x.dtype)
    return half_x * (1 + jax.lax.erf(x * jnp.asarray(SQRT_HALF, x.dtype)))


class Dense(nn.Module):
    """flax's Dense with the same `kernel` [in, out] and `bias` params; the product is the
    backend's (`backend.Backend.dense`), which may hold the kernel in a layout of its own."""

    features: int
    use_bias: bool
    dtype: jnp.dtype
    kernel_init: nn.initializers.Initializer
    backend: Backend

    def __call__(self, x):
        return dense_together(x, [self])[0]

    @nn.compact
    def kernel(self, in_features: int):
        """The loaded kernel as it is (a backend's layout may have another shape), or a new one
        while initialising."""
        if self.has_variable("params", "kernel"):
            return self.get_variable("params", "kernel")
        kernel = self.param("kernel", self.kernel_init, (in_features, self.features))
        if self.use_bias:
            self.param("bias", nn.initializers.zeros, (self.features,))
        return kernel

    def add_bias(self, y):
        """y (this layer's product, in its dtype) plus its bias, if it has one."""
        return y + self.get_variable("params", "bias").astype(self.dtype) if self.use_bias else y


def dense(config: DalleBartConfig, features: int, name: str | None = None) -> Dense:
    return Dense(features, config.use_bias, config.dtype, nn.initializers.normal(config.init_std),
                 config.backend, name=name)


def dense_together(x, layers: list[Dense]) -> list:
    """Each Dense layer of the same x, handed to the backend together: a layer's q, k and v (or
    the GLU's two inputs) can then be one kernel call."""
    kernels = [layer.kernel(x.shape[-1]) for layer in layers]
    outputs = layers[0].backend.dense(x, kernels, [layer.features for layer in layers],
                                      layers[0].dtype)
    return [layer.add_bias(y) for layer, y in zip(layers, outputs, strict=True)]


def l2_normalized(x):
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


class FlaxBartAttention(nn.Module):
    """Multi-head attention without biases (§3.2). Keys and values are projected by their own
    method so the decoder can compute cross-attention keys once per prompt, not once per token."""

    config: DalleBartConfig
    head_count: int

    def setup(self):
        width = self.config.d_model
        self.q_proj = dense(self.config, width)
        self.k_proj = dense(self.config, width)
        self.v_proj = dense(self.config, width)
        self.out_proj = dense(self.config, width)
        if self.config.use_head_scale:
            self.head_scale = self.param(  # (1,1,H,1) in the reference's [B,T,H,D] layout
                "head_scale", nn.initializers.ones, (1, 1, self.head_count, 1)
            )

    def split_heads(self, x):
        """[B,T,d] → [B,H,T,D]: head h owns features [D·h, D·h+D) (§3.2)."""
        return x.reshape(x.shape[:-1] + (self.head_count, -1)).swapaxes(1, 2)

    def project_keys_values(self, source):
        """source [B,Tk,d] → (keys, values), each [B,H,Tk,D]."""
        keys, values = dense_together(source, [self.k_proj, self.v_proj])
        return self.split_heads(keys), self.split_heads(values)

    def project_queries_keys_values(self, x):
        """x [B,T,d] → (queries, keys, values), each [B,H,T,D]: self-attention's projections."""
        return tuple(self.split_heads(y)
                     for y in dense_together(x, [self.q_proj, self.k_proj, self.v_proj]))

    def __call__(self, x, keys, values, is_visible, visible_count=None):
        """x [B,Tq,d] attends to keys/values [B,H,Tk,D]; is_visible [B,1,Tq,Tk] bool.
        visible_count: set for one decode step, where is_visible is exactly
        "position < visible_count" (`backend.Backend.attend`)."""
        return self.attend(self.split_heads(self.q_proj(x)), keys, values, is_visible,
                           visible_count)

    def attend(self, queries, keys, values, is_visible, visible_count=None):
        """`__call__` from projected queries [B,H,Tq,D]."""
        backend = self.config.backend
        if self.config.use_cosine_attention:
            queries, keys = l2_normalized(queries), l2_normalized(backend.readable(keys))
            scale = 1.0 / self.config.tau_init
        else:
            scale = queries.shape[-1] ** -0.5
        out = backend.attend(queries, keys, values, is_visible, scale, visible_count)
        if self.config.use_head_scale:
            out = out * self.head_scale.reshape(1, -1, 1, 1).astype(out.dtype)
        out = out.swapaxes(1, 2)  # [B,Tq,H,D]
        return self.out_proj(out.reshape(out.shape[:-2] + (-1,)))


class GLU(nn.Module):
    """Normformer GLU feed-forward: W2·LN(act(W0·LN(x)) ⊙ (W1·LN(x))) (§3.1)."""

    config: DalleBartConfig
    ffn_dim: int

    @nn.compact
    def __call__(self, x):
        config = self.config
        x = make_norm(config, feeds_dense_is_scaled(config))(x)  # LayerNorm_0
        gate, linear = dense_together(x, [dense(config, self.ffn_dim),  # Dense_0
                                          dense(config, self.ffn_dim)])  # Dense_1
        gate = activation(config)(gate)
        hidden = make_norm(config, feeds_dense_is_scaled(config))(gate * linear)  # LayerNorm_1
        return dense(config, config.d_model)(hidden)  # Dense_2


class FFN(nn.Module):
    """Plain two-matrix normformer feed-forward, for configs with `use_glu=false`."""

    config: DalleBartConfig
    ffn_dim: int

    @nn.compact
    def __call__(self, x):
        config = self.config
        x = make_norm(config, feeds_dense_is_scaled(config))(x)  # LayerNorm_0
        hidden = activation(config)(dense(config, self.ffn_dim)(x))  # Dense_0
        hidden = make_norm(config, feeds_dense_is_scaled(config))(hidden)  # LayerNorm_1
        return dense(config, config.d_model)(hidden)  # Dense_1


def feed_forward(config: DalleBartConfig, ffn_dim: int) -> nn.Module:
    """GLU_0 or FFN_0, as `use_glu` says; the class name gives the checkpoint key."""
    return GLU(config, ffn_dim) if config.use_glu else FFN(config, ffn_dim)
