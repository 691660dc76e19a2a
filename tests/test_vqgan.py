"""VQGAN decoder (minidalle/vqgan.py): published tree and counts, checkpoint round trip, layout."""

import math

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict, unflatten_dict

from minidalle.vqgan import (
    PARAMS_FILE_NAME,
    Upsample,
    VQGANConfig,
    VQGANDecoder,
    abstract_decode_params,
    decode_path_params,
    decode_to_uint8,
    load_vqgan,
    save_vqgan,
    upsample_nearest_2x,
)
from minidalle.random_weights import encoder_shapes, random_vqgan_params

# Two levels instead of five, 32 channels instead of 128: 16x16 codes still make one 2x upsample,
# so the output is 32x32 and the attention at 16x16 still runs.
TINY = VQGANConfig(
    ch=32,
    ch_mult=(1, 2),
    num_res_blocks=1,
    attn_resolutions=(16,),
    resolution=32,
    z_channels=16,
    embed_dim=16,
    n_embed=64,
)
GRID_SIDE = 16
CODE_COUNT = GRID_SIDE * GRID_SIDE


def leaf_size_count(shapes_by_key: dict) -> int:
    return sum(math.prod(shape) for shape in shapes_by_key.values())


def decode_shapes(config: VQGANConfig) -> dict:
    """Decode-path shapes by 'a/b/c' key, from jax.eval_shape (nothing is allocated)."""
    tree = abstract_decode_params(config)
    return {key: leaf.shape for key, leaf in flatten_dict(tree, sep="/").items()}


def random_codes(seed: int, batch_count: int = 1, code_limit: int = TINY.n_embed) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, code_limit, (batch_count, CODE_COUNT))


@pytest.fixture(scope="module")
def tiny_params():
    return random_vqgan_params(TINY, seed=0)


@pytest.fixture
def tiny_folder(tmp_path, tiny_params):
    save_vqgan(tmp_path, TINY, tiny_params)
    return tmp_path


def rewrite_params(folder, change) -> None:
    """Apply `change` to the saved tree's flat {path tuple: array} dict, in place on disk."""
    path = folder / PARAMS_FILE_NAME
    flat = flatten_dict(flax.serialization.msgpack_restore(path.read_bytes()))
    change(flat)
    path.write_bytes(flax.serialization.msgpack_serialize(unflatten_dict(flat)))


# --- published shapes (shared/reference/dalle-mini-architecture.md §6.2) -----------------------


def test_published_decode_path_has_the_documented_names_and_shapes():
    shapes = decode_shapes(VQGANConfig())
    assert shapes["quantize/embedding/embedding"] == (16384, 256)
    assert shapes["post_quant_conv/kernel"] == (1, 1, 256, 256)
    assert shapes["decoder/conv_in/kernel"] == (3, 3, 256, 512)
    assert shapes["decoder/mid/attn_1/proj_out/kernel"] == (1, 1, 512, 512)
    assert shapes["decoder/up_4/attn_2/norm/scale"] == (512,)
    assert shapes["decoder/up_4/upsample/conv/kernel"] == (3, 3, 512, 512)
    assert shapes["decoder/up_3/block_0/nin_shortcut/kernel"] == (1, 1, 512, 256)
    assert shapes["decoder/up_1/block_0/nin_shortcut/kernel"] == (1, 1, 256, 128)
    assert shapes["decoder/up_0/block_2/norm2/bias"] == (128,)
    assert shapes["decoder/norm_out/scale"] == (128,)
    assert shapes["decoder/conv_out/kernel"] == (3, 3, 128, 3)
    assert shapes["decoder/conv_out/bias"] == (3,)
    assert not any(
        "attn" in key
        for key in shapes
        if key.startswith("decoder/up_") and not key.startswith("decoder/up_4/")
    )
    assert not any(key.startswith("decoder/up_0/upsample") for key in shapes)
    assert not any("temb_proj" in key for key in shapes)


@pytest.mark.parametrize(
    ("level", "expected_count"),
    [(4, 19_679_744), (3, 4_855_296), (2, 4_133_632), (1, 1_215_232), (0, 887_040)],
)
def test_published_up_level_counts(level, expected_count):
    shapes = decode_shapes(VQGANConfig())
    level_shapes = {k: s for k, s in shapes.items() if k.startswith(f"decoder/up_{level}/")}
    assert leaf_size_count(level_shapes) == expected_count


def test_published_totals():
    shapes = decode_shapes(VQGANConfig())
    decoder_shapes = {k: s for k, s in shapes.items() if k.startswith("decoder/")}
    assert leaf_size_count(decoder_shapes) == 42_449_795
    assert leaf_size_count(shapes) == 46_709_891
    encoder_side = flatten_dict(encoder_shapes(VQGANConfig()), sep="/")
    assert leaf_size_count(encoder_side) + leaf_size_count(shapes) == 76_073_859


def test_config_reads_config_json_and_ignores_transformers_keys():
    values = {
        **VQGANConfig().to_dict(),
        "architectures": ["VQModel"],
        "transformers_version": "4.12.0",
        "model_type": "vqgan",
        "num_resolutions": 5,
    }
    config = VQGANConfig.from_dict(values)
    assert config == VQGANConfig()
    assert config.ch_mult == (1, 1, 2, 2, 4) and config.n_embed == 16384
    assert VQGANConfig.from_dict(TINY.to_dict()) == TINY


# --- checkpoint round trip on the tiny config ---------------------------------------------------


def test_round_trip_writes_the_full_tree_and_decodes(tiny_folder, tiny_params):
    saved = flax.serialization.msgpack_restore((tiny_folder / PARAMS_FILE_NAME).read_bytes())
    assert set(saved) == {"encoder", "quant_conv", "quantize", "post_quant_conv", "decoder"}

    config, params = load_vqgan(tiny_folder)
    assert config == TINY
    assert set(params) == {"quantize", "post_quant_conv", "decoder"}
    loaded = flatten_dict(params, sep="/")
    for key, value in flatten_dict(decode_path_params(tiny_params), sep="/").items():
        assert loaded[key].dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(loaded[key]), value, err_msg=key)

    codes = random_codes(seed=1, batch_count=2)
    pixels = decode_to_uint8(params, config, codes)
    assert pixels.shape == (2, 32, 32, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, decode_to_uint8(params, config, codes))
    assert 20 < pixels.mean() < 235 and pixels.std() > 10, "random weights give a flat picture"
    assert not np.array_equal(pixels[0], pixels[1])


def test_bfloat16_params_decode_in_float32(tiny_params):
    params_bf16 = jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.bfloat16), tiny_params)
    params_widened = jax.tree.map(lambda leaf: leaf.astype(jnp.float32), params_bf16)
    codes = random_codes(seed=2)
    np.testing.assert_array_equal(
        decode_to_uint8(params_bf16, TINY, codes), decode_to_uint8(params_widened, TINY, codes)
    )


def test_old_group_norm_layout_loads(tiny_folder, tiny_params):
    def make_old_style(flat):
        norm_paths = [path[:-1] for path in flat if path[-1] == "scale"]
        for norm_path in norm_paths:
            for leaf_name in ("scale", "bias"):
                value = flat[norm_path + (leaf_name,)]
                flat[norm_path + (leaf_name,)] = value.reshape(1, 1, 1, -1)

    rewrite_params(tiny_folder, make_old_style)
    config, params = load_vqgan(tiny_folder)
    assert params["decoder"]["norm_out"]["scale"].shape == (32,)
    codes = random_codes(seed=3)
    np.testing.assert_array_equal(
        decode_to_uint8(params, config, codes), decode_to_uint8(tiny_params, TINY, codes)
    )


def drop(key):
    return lambda flat: flat.pop(key)


def reshape(key, shape):
    def change(flat):
        flat[key] = np.zeros(shape, np.float32)

    return change


@pytest.mark.parametrize(
    ("change", "expected_message"),
    [
        (drop(("decoder", "conv_out", "bias")), "decoder/conv_out/bias is missing"),
        (
            reshape(("decoder", "up_0", "block_0", "conv1", "kernel"), (3, 3, 64, 16)),
            "decoder/up_0/block_0/conv1/kernel has shape (3, 3, 64, 16), expected (3, 3, 64, 32)",
        ),
        (
            reshape(("quantize", "embedding", "embedding"), (128, 16)),
            "quantize/embedding/embedding has shape (128, 16), expected (64, 16)",
        ),
        (  # attention runs only at 16x16 (up_1) in the tiny config
            reshape(("decoder", "up_0", "attn_0", "q", "bias"), (32,)),
            "decoder/up_0/attn_0/q/bias is not part of this config's decoder",
        ),
    ],
)
def test_load_names_the_bad_parameter(tiny_folder, change, expected_message):
    rewrite_params(tiny_folder, change)
    with pytest.raises(ValueError) as raised:
        load_vqgan(tiny_folder)
    assert expected_message in str(raised.value)


@pytest.mark.parametrize(
    "codes",
    [np.full((1, CODE_COUNT), 64), np.full((1, CODE_COUNT), -1), np.zeros((1, 250), np.int32)],
)
def test_decode_refuses_codes_outside_the_codebook_or_grid(tiny_params, codes):
    with pytest.raises(ValueError, match="codes must"):
        decode_to_uint8(tiny_params, TINY, codes)


# --- layout -------------------------------------------------------------------------------------


def test_codes_are_laid_out_row_major(tiny_params):
    """Code 3*16 + 12 lands at row 3, column 12; column-major would put it at row 12, column 3."""
    row, column = 3, 12
    codes = random_codes(seed=4)
    changed = codes.copy()
    changed[0, row * GRID_SIDE + column] = (codes[0, row * GRID_SIDE + column] + 1) % TINY.n_embed
    decoder = jax.jit(VQGANDecoder(TINY).apply)
    variables = {"params": decode_path_params(tiny_params)}
    difference = np.abs(np.asarray(decoder(variables, changed) - decoder(variables, codes)))[0]

    pixels_per_cell = TINY.resolution // GRID_SIDE
    # mean |difference| per code cell: [16, 16]
    cell_difference = difference.reshape(
        GRID_SIDE, pixels_per_cell, GRID_SIDE, pixels_per_cell, 3
    ).mean(axis=(1, 3, 4))

    def strongest_near(cell_row, cell_column):
        """Largest change within one cell of (cell_row, cell_column): the convs spread it a bit,
        and GroupNorm and attention carry a little of it everywhere."""
        return cell_difference[cell_row - 1 : cell_row + 2, cell_column - 1 : cell_column + 2].max()

    assert strongest_near(row, column) == cell_difference.max()
    assert strongest_near(column, row) < cell_difference.max() / 5


def test_upsample_conv_equals_a_conv_of_the_nearest_x2_image():
    """The folded 2x2 phase convs are the published 3x3 conv of the upsampled image."""
    rng = np.random.default_rng(5)
    small = jnp.asarray(rng.standard_normal((2, 5, 7, 32), np.float32))
    upsample = Upsample(has_conv=True)
    shapes = jax.eval_shape(upsample.init, jax.random.key(0), small)
    params = jax.tree.map(lambda leaf: rng.standard_normal(leaf.shape, np.float32), shapes)
    kernel, bias = params["params"]["conv"]["kernel"], params["params"]["conv"]["bias"]

    large = upsample_nearest_2x(small)
    assert large.shape == (2, 10, 14, 32)
    np.testing.assert_array_equal(large[:, 7, 12], small[:, 3, 6])  # (i // 2, j // 2)
    expected = jax.lax.conv_general_dilated(
        large, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(upsample.apply(params, small), expected + bias, rtol=1e-5, atol=1e-4)
