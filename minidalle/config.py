"""The DalleBart configuration, read from a published checkpoint's `config.json`.

One frozen dataclass (STYLE 13): every size comes from the file, never from "mini or mega".
The switches and their published values are listed in shared/reference/dalle-mini-architecture.md
§1; `check_supported` refuses the ones this pipeline does not implement instead of silently
computing something else.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax.numpy as jnp

from .backend import XLA, Backend

CONFIG_FILE = "config.json"
FLOAT32 = jnp.dtype("float32")

DTYPE_FROM_NAME = {
    "fp32": jnp.float32, "float32": jnp.float32,
    "bf16": jnp.bfloat16, "bfloat16": jnp.bfloat16,
    "fp16": jnp.float16, "float16": jnp.float16,
    "int8": jnp.int8,  # weight-only: the dense kernels (quantize.py); see `weight_dtype`
}
INT8 = jnp.dtype("int8")


def dtype_from_name(name) -> jnp.dtype:
    """`"bf16"` → jnp.bfloat16; a dtype passes through."""
    if not isinstance(name, str):
        return jnp.dtype(name)
    try:
        return jnp.dtype(DTYPE_FROM_NAME[name.lower()])
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use one of fp32, bf16, fp16, int8") from None


def runtime_dtypes(name, platform: str) -> dict:
    """`--dtype NAME` as the config's runtime fields, for a JAX `platform` ("cpu", "gpu", ...).

    fp32, bf16 and fp16 are the weights' and the activations' dtype alike. int8 is weight-only:
    the dense kernels int8 (quantize.py), the activations bf16 on an accelerator and fp32 on a
    CPU (which has no bf16 arithmetic), the KV cache bf16 either way."""
    dtype = dtype_from_name(name)
    if dtype != INT8:
        return {"dtype": dtype}
    activations = FLOAT32 if platform == "cpu" else jnp.dtype(jnp.bfloat16)
    return {"dtype": activations, "cache_dtype": jnp.bfloat16, "weight_dtype": INT8}


# How this process runs the model: never read from or written to config.json.
RUNTIME_FIELDS = frozenset({"dtype", "cache_dtype", "weight_dtype", "backend"})


@dataclasses.dataclass(frozen=True)
class DalleBartConfig:
    """Sizes and switches of a DalleBart checkpoint; defaults are the published mini's values."""

    d_model: int = 1024
    encoder_layers: int = 12
    decoder_layers: int = 12
    encoder_attention_heads: int = 16
    decoder_attention_heads: int = 16
    encoder_ffn_dim: int = 2730
    decoder_ffn_dim: int = 2730
    encoder_vocab_size: int = 50264
    image_vocab_size: int = 16384
    image_length: int = 256
    max_text_length: int = 64
    decoder_start_token_id: int = 16384
    bos_token_id: int = 16385
    eos_token_id: int = 16385
    pad_token_id: int = 16385
    activation_function: str = "gelu"
    ln_type: str = "layernorm"
    ln_positions: str = "normformer"
    force_ln_scale: bool = False
    use_glu: bool = True
    use_head_scale: bool = False
    use_cosine_attention: bool = False
    tau_init: float = 0.05
    use_absolute_position_embeddings: bool = True
    use_swin_position_embeddings: bool = False
    use_deepnet_scaling: bool = False
    use_alibi: bool = False
    sinkhorn_iters: int = 1
    use_final_ln_encoder: bool = True
    use_final_ln_decoder: bool = True
    scale_embedding: bool = False
    use_bias: bool = False
    normalize_text: bool = True
    init_std: float = 0.02
    # Not in config.json: how this process runs the model (`.replace(dtype=...)`).
    dtype: jnp.dtype = FLOAT32
    cache_dtype: jnp.dtype | None = None  # the decoder's KV cache; None: dtype
    # The dense kernels' storage; None: dtype. int8: quantize.Int8Kernel (weight-only int8),
    # every other weight in dtype.
    weight_dtype: jnp.dtype | None = None
    backend: Backend = XLA  # computes the dense products, attention and KV cache (backend.py)

    @property
    def image_token_count(self) -> int:
        """Rows of the decoder embedding and width of the logits: the codes plus BOS (§1.2)."""
        return self.image_vocab_size + 1

    @property
    def code_count(self) -> int:
        """VQGAN codes the sampler may draw: 0..16383 (§3.4); the rest are never images."""
        return min(self.image_vocab_size, 16384)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.decoder_attention_heads

    @classmethod
    def from_dict(cls, values: dict) -> DalleBartConfig:
        """Keep the fields we know; config.json also carries HF bookkeeping we don't need."""
        known = {f.name for f in dataclasses.fields(cls)} - RUNTIME_FIELDS
        config = cls(**{k: v for k, v in values.items() if k in known})
        config.check_supported()
        return config

    @classmethod
    def load(cls, folder: Path) -> DalleBartConfig:
        path = Path(folder) / CONFIG_FILE
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} not found: is {folder} a DalleBart checkpoint?") from None
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        """The published config.json keys (§1.1 and §10: architectures, model_type, the ids)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in RUNTIME_FIELDS}
        return {
            "architectures": ["eBart"],
            "model_type": "dallebart",
            **values,
            "min_length": self.image_length + 1,
            "max_length": self.image_length + 1,
            "do_sample": True,
            "use_scan": True,
            "use_cache": True,
            "is_encoder_decoder": True,
            "tie_word_embeddings": False,
            "dropout": 0.0,
            "attention_dropout": 0.0,
            "activation_dropout": 0.0,
        }

    def replace(self, **changes) -> DalleBartConfig:
        for field in ("dtype", "cache_dtype", "weight_dtype"):
            if changes.get(field) is not None:
                changes[field] = dtype_from_name(changes[field])
        return dataclasses.replace(self, **changes)

    def check_supported(self) -> None:
        """Refuse switches we don't implement: the published mini and mega use none of them."""
        unsupported = {
            "ln_positions": self.ln_positions != "normformer",
            "ln_type": self.ln_type not in ("layernorm", "rmsnorm"),
            "use_swin_position_embeddings": self.use_swin_position_embeddings,
            "use_deepnet_scaling": self.use_deepnet_scaling,
            "use_alibi": self.use_alibi,
            "sinkhorn_iters": self.sinkhorn_iters != 1,
            "use_absolute_position_embeddings": not self.use_absolute_position_embeddings,
            "activation_function": self.activation_function not in ("gelu", "gelu_new", "relu"),
            "heads": self.d_model % self.decoder_attention_heads != 0
            or self.d_model % self.encoder_attention_heads != 0,
        }
        bad = [name for name, is_bad in unsupported.items() if is_bad]
        if bad:
            shown = ", ".join(f"{name}={getattr(self, name, None)!r}" for name in bad)
            raise ValueError(f"this DalleBart config uses switches minidalle does not support: {shown}")
