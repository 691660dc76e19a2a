"""A model's weights in the layout the CPU kernels stream: every dense kernel packed into panels
(`matmul.pack`), all in one mapping on huge pages (`huge_pages`).
"""

from __future__ import annotations

import numpy as np

from .huge_pages import HugePageArena
from .matmul import pack, packed_shape, storage_dtype


def dense_kernels(tree: dict):
    """Every `kernel` leaf of a parameter tree, depth first."""
    for name, value in tree.items():
        if isinstance(value, dict):
            yield from dense_kernels(value)
        elif name == "kernel":
            yield value


def pack_for_cpu(params: dict) -> dict:
    """The unscanned model tree (`checkpoint.unscan_layers`) with every dense kernel and the
    lm_head packed (an Int8Kernel's values packed, its scales kept).

    Every other weight (embeddings, norms, biases) becomes fp32, the activations' dtype beside
    the kernels: XLA would otherwise convert them on every call, and for bf16 that meant all
    16385 rows of the image-token embedding in each chunk of steps to read a few."""
    every_kernel = [*dense_kernels(params["model"]), params["lm_head"]["kernel"]]
    arena = HugePageArena.for_arrays((packed_shape(kernel.shape), storage_dtype(kernel))
                                     for kernel in every_kernel)

    def prepare(tree):
        return {name: prepare(value) if isinstance(value, dict)
                else pack(value, arena.empty) if name == "kernel"
                else np.asarray(value, np.float32)
                for name, value in tree.items()}

    return {**params, "model": prepare(params["model"]),
            "lm_head": {"kernel": pack(params["lm_head"]["kernel"], arena.empty)}}
