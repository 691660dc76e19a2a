"""A model's weights in the layout the CPU kernels stream: every dense kernel packed into panels
(`matmul.pack`), all in one mapping on huge pages (`huge_pages`).

Packing works in place and frees as it goes, so a model is never held both packed and unpacked
(bench/README.md, "Loading memory").
"""

from __future__ import annotations

import numpy as np

from ..quantize import is_int8
from .huge_pages import HugePageArena
from .matmul import pack, packed_shape, storage_dtype


def leaf_slots(tree: dict):
    """(dict, name) of every leaf of a parameter tree, depth first: where a leaf can be replaced."""
    for name, value in tree.items():
        if isinstance(value, dict):
            yield from leaf_slots(value)
        else:
            yield tree, name


def loaded_buffer(leaf) -> int:
    """Which buffer a leaf's values live in: the stacked tensor an unscanned layer slices."""
    values = leaf.values if is_int8(leaf) else leaf
    return id(values if getattr(values, "base", None) is None else values.base)


def grouped_by_buffer(slots: list) -> list:
    """The slots reordered so that those slicing one buffer come together, in the order
    the buffers first appear."""
    groups: dict[int, list] = {}
    for tree, name in slots:
        groups.setdefault(loaded_buffer(tree[name]), []).append((tree, name))
    return [slot for group in groups.values() for slot in group]


def fp32_copy(array, allocate) -> np.ndarray:
    copy = allocate(array.shape, np.float32)
    copy[...] = array
    return copy


def pack_for_cpu(params: dict) -> dict:
    """The unscanned model tree (`checkpoint.unscan_layers`), packed in place and returned: every
    dense kernel and the lm_head become panels (an Int8Kernel's values packed, its scales kept),
    every other weight fp32, the activations' dtype beside the kernels (XLA would otherwise
    convert them on every call, and for bf16 that meant all 16385 rows of the image-token
    embedding in each chunk of steps to read a few). What is written goes to one arena, whose
    aligned arrays `jax.device_put` aliases rather than copies.

    The tree is this function's: each leaf is replaced as soon as its new form is written, those
    slicing one loaded buffer (a stacked tensor's layers) one after another, so each buffer is
    freed once its last slice is done, where nothing else holds it (`Pipeline.ready_weights`)."""
    slots = [*leaf_slots(params["model"]), (params["lm_head"], "kernel")]
    kernels = [(tree, name) for tree, name in slots if name == "kernel"]
    others = [(tree, name) for tree, name in slots
              if name != "kernel" and np.dtype(tree[name].dtype) != np.float32]
    arena = HugePageArena.for_arrays(
        [*((packed_shape(tree[name].shape), storage_dtype(tree[name])) for tree, name in kernels),
         *((tree[name].shape, np.float32) for tree, name in others)])
    for tree, name in grouped_by_buffer(kernels):
        tree[name] = pack(tree[name], arena.empty)
    for tree, name in grouped_by_buffer(others):
        tree[name] = fp32_copy(tree[name], arena.empty)
    return params
