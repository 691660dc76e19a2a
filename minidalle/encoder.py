"""DalleBart's text encoder: BART token ids → hidden states the decoder attends to (§3.1).

The layers run as one `nn.scan`, matching the stacked `layers/FlaxBartEncoderLayers/...` tree of
the published checkpoints (`use_scan=true`, §2), or one module per layer,
`layers/FlaxBartEncoderLayer_{i}`, as the pipeline runs them (`checkpoint.unscan_layers`): a scan
slices each layer's weights out of the stacked arrays on every call, where separate layers are
read in place.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from .blocks import FlaxBartAttention, feed_forward, feeds_dense_is_scaled, make_norm
from .config import DalleBartConfig

TEXT_PAD_ID = 1  # `<pad>` of the BART tokenizer (§3.4)
SCANNED_ENCODER_LAYERS = "FlaxBartEncoderLayers"  # the published stacked subtree (§2)


class FlaxBartEncoderLayer(nn.Module):
    """One normformer encoder layer: attention branch, then feed-forward branch."""

    config: DalleBartConfig

    @nn.compact
    def __call__(self, hidden, is_visible):
        """hidden [B,T,d]; is_visible [B,1,1,T] key-padding mask. Returns (hidden, None) for scan."""
        config = self.config
        # Attention branch: pre-LN (LayerNorm_0) → attention → post-LN (LayerNorm_1) → residual.
        x = make_norm(config, feeds_dense_is_scaled(config))(hidden)
        attention = FlaxBartAttention(config, config.encoder_attention_heads)
        x = attention.attend(*attention.project_queries_keys_values(x), is_visible)
        hidden = hidden + make_norm(config, is_scaled=True)(x)
        # Feed-forward branch (GLU_0 has its own pre- and mid-LN).
        hidden = hidden + feed_forward(config, config.encoder_ffn_dim)(hidden)
        return hidden, None


class FlaxBartEncoderLayerCollection(nn.Module):
    config: DalleBartConfig
    use_scan: bool = True

    @nn.compact
    def __call__(self, hidden, is_visible):
        if not self.use_scan:
            for index in range(self.config.encoder_layers):
                hidden, _ = FlaxBartEncoderLayer(self.config, name=f"FlaxBartEncoderLayer_{index}")(
                    hidden, is_visible)
            return hidden
        stack = nn.scan(
            FlaxBartEncoderLayer,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=nn.broadcast,
            length=self.config.encoder_layers,
        )
        hidden, _ = stack(self.config, name=SCANNED_ENCODER_LAYERS)(hidden, is_visible)
        return hidden


class DalleBartEncoder(nn.Module):
    """Token ids [B,T] int32 and attention mask [B,T] → encoder states [B,T,d] (config dtype)."""

    config: DalleBartConfig
    use_scan: bool = True

    @nn.compact
    def __call__(self, input_ids, attention_mask):
        config = self.config
        init = nn.initializers.normal(config.init_std)
        embed_tokens = nn.Embed(config.encoder_vocab_size, config.d_model, dtype=config.dtype,
                                embedding_init=init, name="embed_tokens")
        embed_positions = nn.Embed(config.max_text_length, config.d_model, dtype=config.dtype,
                                   embedding_init=init, name="embed_positions")
        positions = jnp.arange(input_ids.shape[-1])[None, :]  # offset 0, padding included (§3.1)
        hidden = embed_tokens(input_ids) + embed_positions(positions)
        if config.scale_embedding:
            hidden = hidden * config.d_model ** 0.5
        hidden = make_norm(config, True, name="layernorm_embedding")(hidden)
        is_visible = attention_mask[:, None, None, :].astype(bool)
        hidden = FlaxBartEncoderLayerCollection(config, self.use_scan, name="layers")(
            hidden, is_visible)
        if config.use_final_ln_encoder:
            hidden = make_norm(config, feeds_dense_is_scaled(config), name="final_ln")(hidden)
        return hidden
