"""DalleBart's image-token decoder with a KV cache (§3.3, §4.1.7 of the architecture reference).

One layer module serves both ways of running the stack:
- `use_scan=True`: the layers are one `nn.scan`, matching the published stacked tree
  `layers/FlaxBartDecoderLayers/...` (used to check shapes and for teacher-forced passes);
- `use_scan=False`: one module per layer, `layers/FlaxBartDecoderLayer_{i}/...`, the reference's own
  "unscanned" layout (§2). Generation runs this way: with each layer's weights in buffers of their
  own, a decode step reads them in place, where a scan would copy each layer's slice of the
  stacked arrays first.

Cross-attention keys and values depend only on the prompt, so they are computed once per batch
(`cross_keys_values`) instead of once per token as the reference does.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from .blocks import FlaxBartAttention, feed_forward, feeds_dense_is_scaled, make_norm
from .config import DalleBartConfig


class KeysValues(NamedTuple):
    """Per-layer attention keys and values, each [B,H,T,D]; stacked [L,B,H,T,D] when scanned."""

    keys: jax.Array
    values: jax.Array


class FlaxBartDecoderLayer(nn.Module):
    """One normformer decoder layer: self-attention, cross-attention, feed-forward branches."""

    config: DalleBartConfig

    @nn.compact
    def __call__(self, hidden, cache: KeysValues, cache_index, cross, cross_is_visible):
        """hidden [B,T,d] holds positions cache_index..cache_index+T-1. cache [B,H,S,D] holds the
        keys/values of earlier positions (S = image_length). cross: this layer's precomputed
        KeysValues, or the encoder states [B,Te,d] to project here. Returns (hidden, cache)."""
        config = self.config
        heads = config.decoder_attention_heads
        # Self-attention branch: LayerNorm_0 → attention over the cache → LayerNorm_1 → residual.
        x = make_norm(config, feeds_dense_is_scaled(config))(hidden)
        self_attention = FlaxBartAttention(config, heads)
        queries, new_keys, new_values = self_attention.project_queries_keys_values(x)
        start = (0, 0, cache_index, 0)
        cache = KeysValues(
            config.backend.cache_write(cache.keys, new_keys, start),
            config.backend.cache_write(cache.values, new_values, start),
        )
        query_positions = cache_index + jnp.arange(hidden.shape[1])
        key_positions = jnp.arange(cache.keys.shape[2])
        is_visible = (key_positions[None, :] <= query_positions[:, None])[None, None]  # causal
        one_step = hidden.shape[1] == 1  # generation: the causal mask is "position <= index"
        x = self_attention.attend(queries, cache.keys, cache.values, is_visible,
                                  visible_count=cache_index + 1 if one_step else None)
        hidden = hidden + make_norm(config, is_scaled=True)(x)
        # Cross-attention branch: LayerNorm_2 → attend to the prompt → LayerNorm_3 → residual.
        x = make_norm(config, feeds_dense_is_scaled(config))(hidden)
        cross_attention = FlaxBartAttention(config, heads)
        if not isinstance(cross, KeysValues):
            cross = KeysValues(*cross_attention.project_keys_values(cross))
        # prompts are padded at the end, so each row sees a prefix of the prompt's positions
        prompt_lengths = (jnp.sum(cross_is_visible, axis=-1, dtype=jnp.int32).reshape(-1)
                          if one_step else None)
        x = cross_attention(x, cross.keys, cross.values, cross_is_visible,
                            visible_count=prompt_lengths)
        hidden = hidden + make_norm(config, is_scaled=True)(x)
        # Feed-forward branch (GLU_0).
        hidden = hidden + feed_forward(config, config.decoder_ffn_dim)(hidden)
        return hidden, cache


class FlaxBartDecoderLayerCollection(nn.Module):
    """The layer stack, scanned or one module per layer (see the module docstring)."""

    config: DalleBartConfig
    use_scan: bool

    @nn.compact
    def __call__(self, hidden, caches, cache_index, crosses, cross_is_visible):
        """crosses: per-layer KeysValues (stacked or a list), or encoder states for every layer."""
        is_precomputed = isinstance(crosses, (KeysValues, list))
        if self.use_scan:
            stack = nn.scan(
                FlaxBartDecoderLayer,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=(0, nn.broadcast, 0 if is_precomputed else nn.broadcast, nn.broadcast),
                length=self.config.decoder_layers,
            )
            layers = stack(self.config, name="FlaxBartDecoderLayers")
            return layers(hidden, caches, cache_index, crosses, cross_is_visible)
        if not is_precomputed:
            crosses = [crosses] * self.config.decoder_layers
        new_caches = []
        for cache, cross in zip(caches, crosses, strict=True):
            hidden, cache = FlaxBartDecoderLayer(self.config)(
                hidden, cache, cache_index, cross, cross_is_visible
            )
            new_caches.append(cache)
        return hidden, new_caches


class DalleBartDecoder(nn.Module):
    """Image tokens [B,T] at positions start..start+T-1 → final hidden states [B,T,d]."""

    config: DalleBartConfig
    use_scan: bool = True

    def setup(self):
        config = self.config
        init = nn.initializers.normal(config.init_std)
        # Attribute names are the published keys under model/decoder (§2).
        self.embed_tokens = nn.Embed(config.image_token_count, config.d_model,
                                     dtype=config.dtype, embedding_init=init)
        self.embed_positions = nn.Embed(config.image_length, config.d_model,
                                        dtype=config.dtype, embedding_init=init)
        self.layernorm_embedding = make_norm(config, is_scaled=True)
        self.layers = FlaxBartDecoderLayerCollection(config, self.use_scan)
        if config.use_final_ln_decoder:
            self.final_ln = make_norm(config, feeds_dense_is_scaled(config))

    def __call__(self, tokens, start_position, caches, crosses, cross_is_visible):
        """tokens [B,T] int32; caches from `init_caches`; crosses from `cross_keys_values` (or the
        encoder states); cross_is_visible [B,1,1,Te] bool. Returns (hidden [B,T,d], caches)."""
        positions = start_position + jnp.arange(tokens.shape[1])
        hidden = self.embed_tokens(tokens) + self.embed_positions(positions)[None]
        if self.config.scale_embedding:
            hidden = hidden * self.config.d_model ** 0.5
        hidden = self.layernorm_embedding(hidden)
        hidden, caches = self.layers(hidden, caches, start_position, crosses, cross_is_visible)
        if self.config.use_final_ln_decoder:
            hidden = self.final_ln(hidden)
        return hidden, caches


def init_caches(config: DalleBartConfig, batch_size: int, use_scan: bool):
    """Zeroed self-attention caches, [L,B,H,S,D] stacked or a list of L [B,H,S,D] pairs."""
    shape = (batch_size, config.decoder_attention_heads, config.image_length, config.head_dim)
    dtype = config.cache_dtype or config.dtype

    def empty() -> KeysValues:
        return KeysValues(config.backend.cache_zeros(shape, dtype),
                          config.backend.cache_zeros(shape, dtype))

    if use_scan:
        shape = (config.decoder_layers,) + shape
        return empty()
    return [empty() for _ in range(config.decoder_layers)]


def cross_keys_values(config: DalleBartConfig, layers_params: dict, encoder_states):
    """Each layer's cross-attention keys/values of the encoder states, in the layout of
    `layers_params` (the `model/decoder/layers` subtree, stacked or unscanned)."""
    attention = FlaxBartAttention(config, config.decoder_attention_heads)

    def project(attention_params):
        return KeysValues(*attention.apply(
            {"params": attention_params}, encoder_states,
            method=FlaxBartAttention.project_keys_values,
        ))

    if "FlaxBartDecoderLayers" in layers_params:
        stacked = layers_params["FlaxBartDecoderLayers"]["FlaxBartAttention_1"]
        return jax.vmap(project)(stacked)
    return [project(layers_params[f"FlaxBartDecoderLayer_{i}"]["FlaxBartAttention_1"])
            for i in range(config.decoder_layers)]
