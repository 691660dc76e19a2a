"""The whole DalleBart as the published checkpoints lay it out: `model/encoder`, `model/decoder`
and a top-level `lm_head` (§2). Its teacher-forced call builds the parameter tree (`init`) and
gives the reference logits tests compare the cached generation path against.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from .blocks import dense
from .config import DalleBartConfig
from .decoder import DalleBartDecoder, init_caches
from .encoder import DalleBartEncoder


class DalleBartModule(nn.Module):
    config: DalleBartConfig
    use_scan: bool = True

    def setup(self):
        self.encoder = DalleBartEncoder(self.config, self.use_scan)
        self.decoder = DalleBartDecoder(self.config, self.use_scan)


class DalleBart(nn.Module):
    """Prompt ids [B,Te] + mask and image tokens [B,T] (BOS first) → logits [B,T,V] in fp32."""

    config: DalleBartConfig
    use_scan: bool = True

    def setup(self):
        self.model = DalleBartModule(self.config, self.use_scan)
        # No bias and not tied to the decoder embedding (§3.3).
        self.lm_head = dense(self.config, self.config.image_token_count)

    def encode(self, input_ids, attention_mask):
        return self.model.encoder(input_ids, attention_mask)

    def logits(self, hidden):
        return self.lm_head(hidden).astype(jnp.float32)

    def __call__(self, input_ids, attention_mask, decoder_tokens):
        encoder_states = self.encode(input_ids, attention_mask)
        caches = init_caches(self.config, decoder_tokens.shape[0], self.use_scan)
        cross_is_visible = attention_mask[:, None, None, :].astype(bool)
        hidden, _ = self.model.decoder(decoder_tokens, 0, caches, encoder_states, cross_is_visible)
        return self.logits(hidden)
