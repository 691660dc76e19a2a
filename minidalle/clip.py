"""CLIP ViT-B/32 in Flax: the text and vision towers that rank a grid's tiles against its prompt.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision" (2021),
as published in `openai/clip-vit-base-patch32`. The modules and their names follow the parameter
tree of that checkpoint's `flax_model.msgpack` (transformers' former FlaxCLIPModel), so the file
loads as it is (STYLE 14): `text_model/...`, `vision_model/...`, `text_projection`,
`visual_projection`, `logit_scale`. Both towers are the same pre-norm transformer; the text one
is causal and pools at its end-of-text token, the vision one pools its class token.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class ClipTextConfig:
    """The text tower's sizes; defaults are ViT-B/32's."""

    hidden_size: int = 512
    intermediate_size: int = 2048
    num_attention_heads: int = 8
    num_hidden_layers: int = 12
    max_position_embeddings: int = 77
    vocab_size: int = 49408
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    # 2 in the published config, which is not the end-of-text id: the pooling then takes the
    # highest id instead, which is the end-of-text token in CLIP's vocabulary (see pool_at_eos).
    eos_token_id: int = 2


@dataclasses.dataclass(frozen=True)
class ClipVisionConfig:
    """The vision tower's sizes; defaults are ViT-B/32's."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_attention_heads: int = 12
    num_hidden_layers: int = 12
    image_size: int = 224
    patch_size: int = 32
    num_channels: int = 3
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """A CLIP checkpoint's config.json: the two towers and the shared embedding space."""

    text: ClipTextConfig = ClipTextConfig()
    vision: ClipVisionConfig = ClipVisionConfig()
    projection_dim: int = 512
    logit_scale_init_value: float = 2.6592

    @classmethod
    def from_dict(cls, values: dict) -> ClipConfig:
        """Known keys only: the published file carries many more (dropout, ids, names)."""
        def pick(config_class, tower: dict):
            names = {field.name for field in dataclasses.fields(config_class)}
            return config_class(**{k: v for k, v in tower.items() if k in names})

        # Older exports keep the towers under `*_config_dict`; the current ones under `*_config`.
        text = values.get("text_config") or values.get("text_config_dict") or {}
        vision = values.get("vision_config") or values.get("vision_config_dict") or {}
        return cls(
            text=pick(ClipTextConfig, text), vision=pick(ClipVisionConfig, vision),
            projection_dim=values.get("projection_dim", cls.projection_dim),
            logit_scale_init_value=values.get("logit_scale_init_value",
                                              cls.logit_scale_init_value),
        )

    @classmethod
    def from_folder(cls, folder: Path) -> ClipConfig:
        return cls.from_dict(json.loads((Path(folder) / CONFIG_FILE).read_text()))

    def to_dict(self) -> dict:
        """The published file's shape (towers under text_config/vision_config)."""
        return {
            "architectures": ["CLIPModel"], "model_type": "clip",
            "text_config": {**dataclasses.asdict(self.text), "model_type": "clip_text_model"},
            "vision_config": {**dataclasses.asdict(self.vision),
                              "model_type": "clip_vision_model"},
            "projection_dim": self.projection_dim,
            "logit_scale_init_value": self.logit_scale_init_value,
        }


def quick_gelu(x):
    """CLIP's GELU approximation, x·σ(1.702x): the activation it was trained with."""
    return x * jax.nn.sigmoid(1.702 * x)


ACTIVATION_FROM_NAME = {"quick_gelu": quick_gelu, "gelu": nn.gelu}


class ClipAttention(nn.Module):
    """Multi-head self-attention; `is_causal` for the text tower."""

    config: ClipTextConfig | ClipVisionConfig
    is_causal: bool

    @nn.compact
    def __call__(self, x):
        batch_count, length, width = x.shape
        head_count = self.config.num_attention_heads
        head_width = width // head_count

        def heads(name):  # [n, length, width] -> [n, length, heads, head_width]
            return nn.Dense(width, name=name)(x).reshape(batch_count, length, head_count,
                                                         head_width)

        q, k, v = heads("q_proj"), heads("k_proj"), heads("v_proj")
        logits = jnp.einsum("nqhd,nkhd->nhqk", q, k) / jnp.sqrt(jnp.float32(head_width))
        if self.is_causal:  # position q sees keys 0..q
            allowed = jnp.tril(jnp.ones((length, length), bool))
            logits = jnp.where(allowed, logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("nhqk,nkhd->nqhd", weights, v).reshape(batch_count, length, width)
        return nn.Dense(width, name="out_proj")(out)


class ClipMlp(nn.Module):
    config: ClipTextConfig | ClipVisionConfig

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.config.intermediate_size, name="fc1")(x)
        x = ACTIVATION_FROM_NAME[self.config.hidden_act](x)
        return nn.Dense(self.config.hidden_size, name="fc2")(x)


class ClipEncoderLayer(nn.Module):
    """One pre-norm transformer layer."""

    config: ClipTextConfig | ClipVisionConfig
    is_causal: bool

    @nn.compact
    def __call__(self, x):
        eps = self.config.layer_norm_eps
        # attention branch
        x = x + ClipAttention(self.config, self.is_causal, name="self_attn")(
            nn.LayerNorm(eps, name="layer_norm1")(x))
        # MLP branch
        return x + ClipMlp(self.config, name="mlp")(nn.LayerNorm(eps, name="layer_norm2")(x))


class ClipLayers(nn.Module):
    """The stack, layers named "0", "1", ... as the published tree has them."""

    config: ClipTextConfig | ClipVisionConfig
    is_causal: bool

    @nn.compact
    def __call__(self, x):
        for index in range(self.config.num_hidden_layers):
            x = ClipEncoderLayer(self.config, self.is_causal, name=str(index))(x)
        return x


class ClipEncoder(nn.Module):
    """Only a level of the published tree (`encoder/layers/<i>`)."""

    config: ClipTextConfig | ClipVisionConfig
    is_causal: bool

    @nn.compact
    def __call__(self, x):
        return ClipLayers(self.config, self.is_causal, name="layers")(x)


def pool_at_eos(hidden, ids, eos_token_id: int):
    """Each text's vector at its end-of-text token: [n, length, width] -> [n, width].

    With the published eos_token_id (2, a leftover) that is the highest id in the row, which is
    `<|endoftext|>` in CLIP's vocabulary; otherwise the first occurrence of eos_token_id.
    """
    positions = ids.argmax(-1) if eos_token_id == 2 else (ids == eos_token_id).argmax(-1)
    return hidden[jnp.arange(hidden.shape[0]), positions]


class ClipTextEmbeddings(nn.Module):
    config: ClipTextConfig

    @nn.compact
    def __call__(self, ids):
        width = self.config.hidden_size
        tokens = nn.Embed(self.config.vocab_size, width, name="token_embedding")(ids)
        positions = nn.Embed(self.config.max_position_embeddings, width,
                             name="position_embedding")(jnp.arange(ids.shape[1]))
        return tokens + positions[None]


class ClipTextTransformer(nn.Module):
    """Token ids [n, length] int32 -> pooled text features [n, hidden_size]."""

    config: ClipTextConfig

    @nn.compact
    def __call__(self, ids):
        x = ClipTextEmbeddings(self.config, name="embeddings")(ids)
        # Causal, so the padding after the end-of-text token never reaches the pooled vector.
        x = ClipEncoder(self.config, is_causal=True, name="encoder")(x)
        x = nn.LayerNorm(self.config.layer_norm_eps, name="final_layer_norm")(x)
        return pool_at_eos(x, ids, self.config.eos_token_id)


class ClipVisionEmbeddings(nn.Module):
    """Patches, a learned class token in front, and learned positions: [n, 1 + patches, width]."""

    config: ClipVisionConfig

    @nn.compact
    def __call__(self, pixels):
        width, side = self.config.hidden_size, self.config.patch_size
        patches = nn.Conv(width, (side, side), strides=(side, side), padding="VALID",
                          use_bias=False, name="patch_embedding")(pixels)  # [n, g, g, width]
        patches = patches.reshape(patches.shape[0], -1, width)
        class_token = self.param("class_embedding", nn.initializers.normal(0.02), (width,))
        class_tokens = jnp.broadcast_to(class_token, (patches.shape[0], 1, width))
        x = jnp.concatenate([class_tokens, patches], axis=1)
        positions = nn.Embed(x.shape[1], width, name="position_embedding")(
            jnp.arange(x.shape[1]))
        return x + positions[None]


class ClipVisionTransformer(nn.Module):
    """Pixels [n, size, size, 3] float32 (normalised) -> pooled image features [n, hidden_size]."""

    config: ClipVisionConfig

    @nn.compact
    def __call__(self, pixels):
        eps = self.config.layer_norm_eps
        x = ClipVisionEmbeddings(self.config, name="embeddings")(pixels)
        x = nn.LayerNorm(eps, name="pre_layrnorm")(x)  # sic: the published name
        x = ClipEncoder(self.config, is_causal=False, name="encoder")(x)
        return nn.LayerNorm(eps, name="post_layernorm")(x[:, 0])  # the class token


class Clip(nn.Module):
    """Both towers projected into one space, and the learned temperature of their similarity."""

    config: ClipConfig

    def setup(self):
        self.text_model = ClipTextTransformer(self.config.text)
        self.vision_model = ClipVisionTransformer(self.config.vision)
        self.text_projection = nn.Dense(self.config.projection_dim, use_bias=False)
        self.visual_projection = nn.Dense(self.config.projection_dim, use_bias=False)
        self.logit_scale = self.param(
            "logit_scale", nn.initializers.constant(self.config.logit_scale_init_value), ())

    def embed_text(self, ids):
        """[n, length] int32 -> [n, projection_dim], not normalised."""
        return self.text_projection(self.text_model(ids))

    def embed_images(self, pixels):
        """[n, size, size, 3] -> [n, projection_dim], not normalised."""
        return self.visual_projection(self.vision_model(pixels))

    def __call__(self, ids, pixels):
        """Scaled cosine similarities [n_images, n_texts], as the DALL-E Mini notebook scores."""
        text = unit(self.embed_text(ids))
        images = unit(self.embed_images(pixels))
        return jnp.exp(self.logit_scale) * images @ text.T


def unit(x):
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def abstract_params(config: ClipConfig) -> dict:
    """The parameter tree's shapes and dtypes, built without allocating."""
    ids = jnp.zeros((1, config.text.max_position_embeddings), jnp.int32)
    side = config.vision.image_size
    pixels = jnp.zeros((1, side, side, config.vision.num_channels), jnp.float32)
    return jax.eval_shape(lambda: Clip(config).init(jax.random.PRNGKey(0), ids, pixels))["params"]
