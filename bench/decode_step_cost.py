"""What one decode step of DalleBart reads and computes: the cost the token loop is held against.

bench/bench_pipeline.py divides these bytes by the probed memory bandwidth (and the flops by the
matmul peak) to say how close a loop comes to the machine's limit (STYLE 18, nanoGPT's
`estimate_mfu`). The weights are counted from the parameter tree itself (`abstract_params`, no
allocation), so any config counts exactly, mega included. Per step, for `rows` decoder rows:
- every dense kernel of the decoder layers and the LM head, except cross-attention's k/v (they
  are projected once from the encoder states and cached), at the kernel's bytes per weight;
- with weight-only int8, one fp32 scale per output column of each of those kernels;
- the norms' scales and biases, at the activation dtype's bytes;
- the KV cache at half length and the cached cross-attention keys and values, per row, at the
  cache dtype's bytes (bf16 for int8).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from flax.traverse_util import flatten_dict

INT8_SCALE_BYTES = 4  # one fp32 scale per output column
CROSS_ATTENTION = "FlaxBartAttention_1"  # the decoder layer's second attention (decoder.py)


@dataclasses.dataclass(frozen=True)
class WeightBytes:
    """Bytes per kernel weight, per output column's scale, per activation and per KV-cache value."""

    kernel: int
    column_scale: int
    activation: int
    cache: int

    @classmethod
    def for_dtype(cls, name: str, backend: str) -> WeightBytes:
        """fp32/bf16/fp16: everything in that dtype. int8: 1-byte kernels, fp32 column scales,
        activations bf16 on an accelerator and fp32 on a CPU, a bf16 KV cache
        (config.runtime_dtypes)."""
        if name == "int8":
            return cls(1, INT8_SCALE_BYTES, 4 if backend == "cpu" else 2, 2)
        from minidalle.config import dtype_from_name

        itemsize = np.dtype(dtype_from_name(name)).itemsize
        return cls(itemsize, 0, itemsize, itemsize)


def is_streamed_kernel(key: str) -> bool:
    """A dense kernel a decode step reads: the decoder's layers and the LM head, not the encoder's,
    and not cross-attention's k/v projections (cached once per prompt)."""
    if not key.endswith("/kernel") or "/encoder/" in key:
        return False
    is_cross_key_value = CROSS_ATTENTION in key and ("/k_proj/" in key or "/v_proj/" in key)
    return not is_cross_key_value


def decoder_weight_counts(config) -> dict:
    """Kernel weights, their output columns, and norm values a step reads (all layers)."""
    from minidalle.checkpoint import abstract_params

    counts = {"kernel_weights": 0, "kernel_columns": 0, "norm_values": 0}
    for key, spec in flatten_dict(abstract_params(config), sep="/").items():
        if is_streamed_kernel(key):
            counts["kernel_weights"] += math.prod(spec.shape)
            # a stacked kernel [layers, K, N] has layers x N columns
            counts["kernel_columns"] += math.prod(spec.shape) // spec.shape[-2]
        elif "/decoder/" in key and key.rsplit("/", 1)[-1] in ("scale", "bias"):
            counts["norm_values"] += math.prod(spec.shape)
    return counts


def step_cost(config, rows: int, weight_bytes: WeightBytes,
              counts: dict | None = None) -> tuple[float, float]:
    """Bytes read and flops of one decode step for `rows` decoder rows (KV cache at half length)."""
    counts = counts or decoder_weight_counts(config)
    d, layers = config.d_model, config.decoder_layers
    weights = (counts["kernel_weights"] * weight_bytes.kernel
               + counts["kernel_columns"] * weight_bytes.column_scale
               + counts["norm_values"] * weight_bytes.activation)
    cache_values = rows * layers * 2 * (config.image_length // 2) * d
    cross_values = rows * layers * 2 * config.max_text_length * d
    flops = (2 * rows * counts["kernel_weights"]
             + rows * layers * 4 * d * (config.image_length // 2 + 64))
    return weights + (cache_values + cross_values) * weight_bytes.cache, flops
