"""Random weights in the published checkpoint formats, for tests, benchmarks and the demo.

`tiny.write_random_checkpoint` saves them exactly as the published files are laid out, so they
load through the same code as real weights (STYLE 9). Nothing here runs when real weights load.
"""

from __future__ import annotations

import math

import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from .checkpoint import abstract_params
from .config import DalleBartConfig
from .vqgan import VQGANConfig, abstract_decode_params


def random_params(config: DalleBartConfig, seed: int) -> dict:
    """Fresh fp32 numpy weights in the published layout: kernels and embeddings ~ N(0, init_std),
    norm scales 1, biases 0 (flax's initialisers), drawn with numpy so no model is compiled."""
    rng = np.random.default_rng(seed)
    flat = {}
    for key, spec in sorted(flatten_dict(abstract_params(config), sep="/").items()):
        leaf = key.rsplit("/", 1)[-1]
        if leaf in ("kernel", "embedding"):
            flat[key] = rng.standard_normal(spec.shape, np.float32) * np.float32(config.init_std)
        elif leaf in ("scale", "head_scale"):
            flat[key] = np.ones(spec.shape, np.float32)
        else:
            flat[key] = np.zeros(spec.shape, np.float32)
    return unflatten_dict(flat, sep="/")


def _norm_shapes(channel_count: int) -> dict:
    return {"scale": (channel_count,), "bias": (channel_count,)}


def _conv_shapes(kernel_side: int, in_count: int, out_count: int) -> dict:
    return {"kernel": (kernel_side, kernel_side, in_count, out_count), "bias": (out_count,)}


def _resnet_shapes(in_count: int, out_count: int) -> dict:
    shapes = {
        "norm1": _norm_shapes(in_count),
        "conv1": _conv_shapes(3, in_count, out_count),
        "norm2": _norm_shapes(out_count),
        "conv2": _conv_shapes(3, out_count, out_count),
    }
    if in_count != out_count:
        shapes["nin_shortcut"] = _conv_shapes(1, in_count, out_count)
    return shapes


def _attention_shapes(channel_count: int) -> dict:
    projections = {name: _conv_shapes(1, channel_count, channel_count) for name in "qkv"}
    return {
        "norm": _norm_shapes(channel_count),
        **projections,
        "proj_out": _conv_shapes(1, channel_count, channel_count),
    }


def encoder_shapes(config: VQGANConfig) -> dict:
    """Shapes of the `encoder` and `quant_conv` branches as vqgan-jax's Encoder lays them out.

    We never encode; these exist so checkpoints we write have the published file's full tree.
    """
    in_counts = (config.ch,) + tuple(config.ch * m for m in config.ch_mult[:-1])
    encoder = {"conv_in": _conv_shapes(3, config.in_channels, config.ch)}
    resolution = config.resolution
    for level, multiplier in enumerate(config.ch_mult):
        in_count, out_count = in_counts[level], config.ch * multiplier
        down = {}
        for index in range(config.num_res_blocks):
            down[f"block_{index}"] = _resnet_shapes(in_count, out_count)
            in_count = out_count
            if resolution in config.attn_resolutions:
                down[f"attn_{index}"] = _attention_shapes(out_count)
        if level != config.level_count - 1:
            if config.resamp_with_conv:
                down["downsample"] = {"conv": _conv_shapes(3, out_count, out_count)}
            resolution //= 2
        encoder[f"down_{level}"] = down
    mid_count = config.ch * config.ch_mult[-1]
    z_count = 2 * config.z_channels if config.double_z else config.z_channels
    encoder["mid"] = {
        "block_1": _resnet_shapes(mid_count, mid_count),
        "attn_1": _attention_shapes(mid_count),
        "block_2": _resnet_shapes(mid_count, mid_count),
    }
    encoder["norm_out"] = _norm_shapes(mid_count)
    encoder["conv_out"] = _conv_shapes(3, mid_count, z_count)
    return {"encoder": encoder, "quant_conv": _conv_shapes(1, z_count, config.embed_dim)}


def random_vqgan_params(config: VQGANConfig, seed: int) -> dict:
    """Full published tree (encoder included) of float32 numpy arrays, for tests and the demo.

    Every leaf is random, GroupNorm scale and bias included, so a loader that mixes two of them
    up shows. Kernels keep activations near unit scale; the output head is centred on mid-grey so
    the pictures are neither black nor white.
    """
    shapes = flatten_dict(encoder_shapes(config))
    decode = flatten_dict(abstract_decode_params(config))
    shapes.update({path: leaf.shape for path, leaf in decode.items()})
    rng = np.random.default_rng(seed)
    flat = {}
    for path in sorted(shapes):
        shape, leaf_name = shapes[path], path[-1]
        noise = rng.standard_normal(shape, dtype=np.float32)
        if leaf_name == "embedding":
            flat[path] = noise
        elif leaf_name == "kernel":
            flat[path] = noise / np.float32(math.sqrt(math.prod(shape[:-1])))
        elif leaf_name == "scale":
            flat[path] = 1 + np.float32(0.1) * noise
        else:  # conv and GroupNorm biases
            flat[path] = np.float32(0.1) * noise
    flat[("decoder", "conv_out", "kernel")] *= np.float32(0.3)
    flat[("decoder", "conv_out", "bias")] += np.float32(0.5)
    return unflatten_dict(flat)
