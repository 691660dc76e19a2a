"""Reading and writing CLIP weights as `openai/clip-vit-base-patch32` publishes them.

The folder holds `config.json`, `flax_model.msgpack` (one flax-msgpack dict in the layout of
transformers' former FlaxCLIPModel, which clip.py's names follow, so nothing is renamed) and the
tokenizer files. Reading goes through checkpoint.py's helpers, as for DalleBart: a memory map,
a check of every key and shape against the config, extra keys ignored. Random weights in the
same layout serve the tiny model, the tests and bench/bench_clip.py (STYLE 9).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from .checkpoint import read_checked
from .clip import ClipConfig, abstract_params

INIT_STD = 0.02


def load_params(folder: Path, config: ClipConfig) -> dict:
    """`folder/flax_model.msgpack` as float32 numpy, checked against config."""
    return read_checked(folder, abstract_params(config), "CLIP", np.float32)


def random_params(config: ClipConfig, seed: int) -> dict:
    """Fresh float32 weights in the published layout, drawn with numpy (nothing is compiled):
    kernels and embeddings ~ N(0, 0.02), LayerNorm scales near 1 and biases near 0 (random, so a
    loader that swaps two of them shows), logit_scale as the config says."""
    rng = np.random.default_rng(seed)
    flat = {}
    for key, spec in sorted(flatten_dict(abstract_params(config), sep="/").items()):
        leaf = key.rsplit("/", 1)[-1]
        noise = rng.standard_normal(spec.shape, np.float32)
        if key == "logit_scale":
            flat[key] = np.asarray(config.logit_scale_init_value, np.float32)
        elif leaf == "scale":
            flat[key] = 1 + np.float32(0.1) * noise
        elif leaf == "bias":
            flat[key] = np.float32(0.1) * noise
        else:  # kernel, embedding, class_embedding
            flat[key] = np.float32(INIT_STD) * noise
    return unflatten_dict(flat, sep="/")
