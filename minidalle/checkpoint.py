"""Reading and writing DalleBart weights in the published format (§2 of the reference).

`flax_model.msgpack` is one flax-msgpack dict with the layers stacked (`use_scan=true`). This module
owns every change of layout (STYLE 14): checking the tree against the config, casting to the
requested dtype, and splitting the decoder's stacked layers into the reference's unscanned names
(`FlaxBartDecoderLayers/x[i]` → `FlaxBartDecoderLayer_i/x`) for generation.
"""

from __future__ import annotations

import math
import mmap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from flax.traverse_util import flatten_dict, unflatten_dict

from .config import INT8, DalleBartConfig
from .encoder import SCANNED_ENCODER_LAYERS
from .model import DalleBart
from .msgpack_walk import walk_arrays
from .quantize import quantize, quantize_layer_by_layer

MODEL_FILE = "flax_model.msgpack"
# XLA's CPU client aliases a host array this aligned rather than copying it in `jax.device_put`
# (numpy's own arrays are only 16-byte aligned): so loaded weights are not copied once more.
DEVICE_PUT_ALIGNMENT_BYTES = 64
SCANNED_DECODER_LAYERS = "FlaxBartDecoderLayers"


def abstract_params(config: DalleBartConfig) -> dict:
    """The parameter tree's shapes and dtypes, built without allocating (works for mega on CI)."""
    ids = jnp.zeros((1, config.max_text_length), jnp.int32)
    tokens = jnp.zeros((1, config.image_length), jnp.int32)
    model = DalleBart(config.replace(dtype="fp32"))
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), ids, ids, tokens))["params"]


def read_msgpack(path: Path) -> dict:
    """The whole flax-msgpack file as a tree of arrays (flax restores a copy of each): for tools
    and tests that edit a checkpoint; loading goes through `read_checked`, which streams."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return serialization.msgpack_restore(mapped)


def check_tree(params: dict, expected: dict, what: str) -> None:
    """Raise ValueError naming the first missing or misshapen key; extra keys are ignored."""
    found = flatten_dict(params, sep="/")
    for key, spec in flatten_dict(expected, sep="/").items():
        if key not in found:
            raise ValueError(f"{what}: parameter {key} is missing")
        if tuple(found[key].shape) != tuple(spec.shape):
            raise ValueError(
                f"{what}: parameter {key} has shape {tuple(found[key].shape)}, "
                f"the config expects {tuple(spec.shape)}"
            )


def keep_expected(params: dict, expected: dict) -> dict:
    found = flatten_dict(params, sep="/")
    return unflatten_dict({key: found[key] for key in flatten_dict(expected, sep="/")}, sep="/")


def cast_floats(params, dtype):
    """Floating weights (a tree or one array) to dtype (numpy + ml_dtypes, before they reach the
    device)."""
    dtype = np.dtype(dtype)
    return jax.tree.map(
        lambda a: a.astype(dtype) if np.issubdtype(a.dtype, np.floating) or a.dtype.kind == "V"
        else a,
        params,
    )


def load_params(folder: Path, config: DalleBartConfig) -> dict:
    """`folder/flax_model.msgpack`, checked against config and cast to config.dtype (numpy); with
    `config.weight_dtype` int8, the dense kernels quantized from the file's floats. Streamed: the
    host needs about the final weights plus one tensor of the file (bench/bench_load_memory.py)."""
    return read_checked(folder, abstract_params(config), "DalleBart", config.dtype,
                        is_quantized=config.weight_dtype == INT8 and is_kernel)


def load_params_whole(folder: Path, config: DalleBartConfig) -> dict:
    """What `load_params` returns, the way it was first built: flax restores the whole file,
    then it is cast (or quantized). Kept as the reference the streamed reader is tested
    against and as the baseline of bench/bench_load_memory.py; needs the file's size in copies
    beside the result."""
    expected = abstract_params(config)
    path = checkpoint_path(folder, "DalleBart")
    params = read_msgpack(path)
    check_tree(params, expected, str(path))
    kept = flatten_dict(keep_expected(params, expected), sep="/")
    is_quantized = config.weight_dtype == INT8
    cast = unflatten_dict({key: value if is_quantized and is_kernel(key)
                           else cast_floats(value, config.dtype) for key, value in kept.items()},
                          sep="/")
    return quantize_kernels(cast) if is_quantized else cast


def is_kernel(key: str) -> bool:
    """Whether the flattened key `a/b/kernel` names a dense kernel (every kernel of DalleBart is
    one: it has no convolutions)."""
    return key.rsplit("/", 1)[-1] == "kernel"


def quantize_kernels(params: dict) -> dict:
    """Every dense kernel (stacked layers too: scales per layer and column) as quantize.Int8Kernel."""
    flat = flatten_dict(params, sep="/")
    return unflatten_dict({key: quantize(value) if is_kernel(key) else value
                           for key, value in flat.items()}, sep="/")


def checkpoint_path(folder: Path, kind: str) -> Path:
    path = Path(folder) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {folder} a {kind} checkpoint?")
    return path


def read_checked(folder: Path, expected: dict, kind: str, dtype, is_quantized=None) -> dict:
    """`folder/flax_model.msgpack` checked against the `expected` tree of shapes, keeping only
    what it names, floats cast to dtype (numpy); `kind` names the model in the error.
    is_quantized(key): the leaves quantized to int8 (`quantize.Int8Kernel`) instead.

    Each tensor takes its final form as it is read (`msgpack_walk`), one layer at a time for a
    quantized stack, so the file's floats are never all in memory at once."""
    path = checkpoint_path(folder, kind)
    spec_from_key = flatten_dict(expected, sep="/")

    def final_form(keys: tuple[str, ...], array: np.ndarray):
        key = "/".join(keys)
        spec = spec_from_key.get(key)
        if spec is None:
            return None  # not a parameter of the model: ignored, as check_tree does
        if tuple(array.shape) != tuple(spec.shape):
            raise ValueError(f"{path}: parameter {key} has shape {tuple(array.shape)}, "
                             f"the config expects {tuple(spec.shape)}")
        if is_quantized and is_quantized(key):
            return quantize_layer_by_layer(array, aligned_empty)
        return cast_array(array, dtype)

    params = walk_arrays(path, final_form)
    check_tree(params, expected, str(path))
    return params


def cast_array(array: np.ndarray, dtype) -> np.ndarray:
    """A copy of one array, floats in dtype (what `cast_floats` does to each leaf), aligned for
    `jax.device_put` to alias."""
    is_float = np.issubdtype(array.dtype, np.floating) or array.dtype.kind == "V"
    copy = aligned_empty(array.shape, np.dtype(dtype) if is_float else array.dtype)
    copy[...] = array
    return copy


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array starting on a DEVICE_PUT_ALIGNMENT_BYTES boundary."""
    byte_count = math.prod(shape) * np.dtype(dtype).itemsize
    spare = np.empty(byte_count + DEVICE_PUT_ALIGNMENT_BYTES, np.uint8)
    start = -spare.ctypes.data % DEVICE_PUT_ALIGNMENT_BYTES
    return spare[start:start + byte_count].view(dtype).reshape(shape)


def save_params(folder: Path, params: dict) -> Path:
    """Write the tree as the published single-file `flax_model.msgpack`."""
    path = Path(folder) / MODEL_FILE
    path.write_bytes(serialization.msgpack_serialize(jax.tree.map(np.asarray, params)))
    return path


def unscan_layers(params: dict, config: DalleBartConfig) -> dict:
    """Split the encoder's and the decoder's stacked layers into `FlaxBartEncoderLayer_{i}` and
    `FlaxBartDecoderLayer_{i}` subtrees (views): each layer's weights become buffers of their
    own, which XLA reads in place (a scan would slice a copy of each layer first). The tree is
    new dicts all through, holding the same arrays: a backend may replace its leaves in place
    (`Backend.prepare`) without touching `params`."""
    def unscan(part: str, stacked_name: str, layer_name: str, count: int) -> dict:
        stacked = params["model"][part]["layers"][stacked_name]
        layers = {f"{layer_name}_{i}": jax.tree.map(lambda a, i=i: a[i], stacked)
                  for i in range(count)}
        return {**params["model"][part], "layers": layers}

    model = {
        "encoder": unscan("encoder", SCANNED_ENCODER_LAYERS, "FlaxBartEncoderLayer",
                          config.encoder_layers),
        "decoder": unscan("decoder", SCANNED_DECODER_LAYERS, "FlaxBartDecoderLayer",
                          config.decoder_layers),
    }
    return jax.tree.map(lambda leaf: leaf, {**params, "model": {**params["model"], **model}})
