"""VQGAN f16/16384 decoder: turns a 16x16 grid of image codes into a 256x256 picture.

The bart decoder speaks in codes; this module is where they become pixels. It loads the published
`dalle-mini/vqgan_imagenet_f16_16384` checkpoint (patil-suraj/vqgan-jax layout) with our own Flax
modules, keeping the published parameter names so the file loads without renaming. The design,
the decode-path tree and the pixel convention are in shared/reference/dalle-mini-architecture.md §6.
Only the decode path runs; `random_weights` writes files with the published file's full tree
(tests and the demo use them).
"""

import dataclasses
import functools
import json
import math
from pathlib import Path

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

GROUP_NORM_GROUP_COUNT = 32
GROUP_NORM_EPSILON = 1e-6  # vqgan-jax's value; torch's GroupNorm default (1e-5) differs
DECODE_PATH_BRANCHES = ("quantize", "post_quant_conv", "decoder")
CONFIG_FILE_NAME = "config.json"
PARAMS_FILE_NAME = "flax_model.msgpack"


@dataclasses.dataclass(frozen=True)
class VQGANConfig:
    """The published config.json fields; defaults are the f16/16384 checkpoint's values."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    resolution: int = 256
    z_channels: int = 256
    embed_dim: int = 256
    n_embed: int = 16384
    in_channels: int = 3
    out_ch: int = 3
    double_z: bool = False
    dropout: float = 0.0  # training only: decoding is deterministic
    resamp_with_conv: bool = True
    give_pre_end: bool = False

    @property
    def level_count(self) -> int:
        return len(self.ch_mult)

    @property
    def code_grid_side(self) -> int:
        """Side of the code grid the config was trained on (16 for 256 pixels, f16)."""
        return self.resolution // 2 ** (self.level_count - 1)

    @classmethod
    def from_dict(cls, values: dict) -> "VQGANConfig":
        """Build from config.json, ignoring the keys transformers adds (architectures, ...)."""
        known_names = {field.name for field in dataclasses.fields(cls)}
        kept = {name: value for name, value in values.items() if name in known_names}
        for name in ("ch_mult", "attn_resolutions"):
            if name in kept:
                kept[name] = tuple(kept[name])
        return cls(**kept)

    def to_dict(self) -> dict:
        """JSON-ready fields, sequences as lists as config.json stores them."""
        values = dataclasses.asdict(self)
        return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


# ---------------------------------------------------------------------------------------------
# Blocks, in the order the decoder uses them


def group_norm(name: str) -> nn.GroupNorm:
    # Two-pass variance: the one-pass E[x²]-E[x]² loses digits on large activations.
    return nn.GroupNorm(
        num_groups=GROUP_NORM_GROUP_COUNT,
        epsilon=GROUP_NORM_EPSILON,
        use_fast_variance=False,
        name=name,
    )


def conv(features: int, kernel_side: int, name: str) -> nn.Conv:
    """Stride-1 conv that keeps the spatial size (kernel (kh, kw, in, out), NHWC)."""
    return nn.Conv(features, (kernel_side, kernel_side), padding=kernel_side // 2, name=name)


class ResnetBlock(nn.Module):
    """Pre-norm residual block; the 1x1 `nin_shortcut` appears only when channels change."""

    out_channels: int

    @nn.compact
    def __call__(self, x):
        h = conv(self.out_channels, 3, "conv1")(nn.swish(group_norm("norm1")(x)))
        h = conv(self.out_channels, 3, "conv2")(nn.swish(group_norm("norm2")(h)))
        if x.shape[-1] != self.out_channels:
            x = conv(self.out_channels, 1, "nin_shortcut")(x)
        return x + h  # residual branch


class AttentionBlock(nn.Module):
    """Single-head self-attention over all grid positions, with 1x1 convs as projections."""

    @nn.compact
    def __call__(self, x):
        batch_count, height, width, channel_count = x.shape
        h = group_norm("norm")(x)
        q, k, v = (conv(channel_count, 1, name)(h) for name in ("q", "k", "v"))
        q, k, v = (t.reshape(batch_count, height * width, channel_count) for t in (q, k, v))
        weights = jnp.einsum("bqc,bkc->bqk", q, k) * channel_count**-0.5  # [B, HW, HW]
        weights = jax.nn.softmax(weights, axis=-1)  # over keys
        h = jnp.einsum("bqk,bkc->bqc", weights, v).reshape(x.shape)
        return x + conv(channel_count, 1, "proj_out")(h)  # residual branch


def interleave_2x2(phases):
    """phases[a][b] [B, H, W, C] -> [B, 2H, 2W, C] with phases[a][b] at pixels (2i + a, 2j + b)."""
    rows = [jnp.stack(phases[a], axis=3) for a in (0, 1)]  # [B, H, W, 2, C] each
    stacked = jnp.stack(rows, axis=2)  # [B, H, 2, W, 2, C]
    batch_count, height, _, width, _, channel_count = stacked.shape
    return stacked.reshape(batch_count, 2 * height, 2 * width, channel_count)


def upsample_nearest_2x(x):
    """Pixel (i, j) of the result copies pixel (i // 2, j // 2) of x (NHWC)."""
    return interleave_2x2([[x, x], [x, x]])


def fold_taps(kernel, phase: int, axis: int):
    """3 taps along `axis` -> the 2 that reach distinct source pixels for output `phase`.

    After a nearest x2, output 2i (phase 0) reads sources (i-1, i, i) and 2i+1 reads (i, i, i+1).
    """
    first, middle, last = (jnp.take(kernel, index, axis=axis) for index in range(3))
    taps = (first, middle + last) if phase == 0 else (first + middle, last)
    return jnp.stack(taps, axis=axis)


class UpsampleConv(nn.Module):
    """A 3x3 conv of the nearest-x2 image, computed from the small image.

    Each output phase (a, b) is a 2x2 conv of the input with folded taps: the same products summed
    in another order, so it equals conv(upsample_nearest_2x(x)) up to float rounding, with 4/9 of
    the multiplies and no 4x-sized intermediate. Params are a plain 3x3 conv's, as published.
    """

    @nn.compact
    def __call__(self, x):
        channel_count = x.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (3, 3, channel_count, channel_count)
        )
        bias = self.param("bias", nn.initializers.zeros, (channel_count,))
        phases = [[None, None], [None, None]]
        for row_phase in (0, 1):
            row_kernel = fold_taps(kernel, row_phase, axis=0)
            for column_phase in (0, 1):
                phase_kernel = fold_taps(row_kernel, column_phase, axis=1)  # [2, 2, C, C]
                # phase 0 reads sources (i-1, i): pad before; phase 1 reads (i, i+1): pad after
                padding = ((1 - row_phase, row_phase), (1 - column_phase, column_phase))
                phases[row_phase][column_phase] = jax.lax.conv_general_dilated(
                    x, phase_kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
                )
        return interleave_2x2(phases) + bias


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv (`upsample/conv`) when the config has one."""

    has_conv: bool

    @nn.compact
    def __call__(self, x):
        if self.has_conv:
            return UpsampleConv(name="conv")(x)
        return upsample_nearest_2x(x)


class MidBlock(nn.Module):
    """Res -> attention -> Res at the coarsest grid."""

    @nn.compact
    def __call__(self, x):
        channel_count = x.shape[-1]
        x = ResnetBlock(channel_count, name="block_1")(x)
        x = AttentionBlock(name="attn_1")(x)
        return ResnetBlock(channel_count, name="block_2")(x)


class UpLevel(nn.Module):
    """One resolution level: ResBlocks (each followed by its attention block where the
    resolution has attention), then nearest x2 + 3x3 conv unless this is the finest level."""

    out_channels: int
    block_count: int
    has_attention: bool
    has_upsample: bool
    upsample_has_conv: bool

    @nn.compact
    def __call__(self, x):
        for index in range(self.block_count):
            x = ResnetBlock(self.out_channels, name=f"block_{index}")(x)
            if self.has_attention:  # interleaved one-to-one (vqgan-jax after caafeee)
                x = AttentionBlock(name=f"attn_{index}")(x)
        if self.has_upsample:
            x = Upsample(self.upsample_has_conv, name="upsample")(x)
        return x


class Decoder(nn.Module):
    """conv_in -> mid -> up levels from coarse (up_{L-1}) to fine (up_0) -> norm, swish, conv."""

    config: VQGANConfig

    @nn.compact
    def __call__(self, z):
        config = self.config
        x = conv(config.ch * config.ch_mult[-1], 3, "conv_in")(z)
        x = MidBlock(name="mid")(x)
        # Attention placement follows the config's grid, as in vqgan-jax, whatever the input size.
        resolution = config.code_grid_side
        for level in reversed(range(config.level_count)):
            x = UpLevel(
                out_channels=config.ch * config.ch_mult[level],
                block_count=config.num_res_blocks + 1,
                has_attention=resolution in config.attn_resolutions,
                has_upsample=level != 0,
                upsample_has_conv=config.resamp_with_conv,
                name=f"up_{level}",
            )(x)
            resolution *= 2
        if config.give_pre_end:
            return x
        x = nn.swish(group_norm("norm_out")(x))
        return conv(config.out_ch, 3, "conv_out")(x)


class Codebook(nn.Module):
    """The quantizer's table; decoding only looks codes up in it."""

    code_count: int
    code_dim: int

    @nn.compact
    def __call__(self, codes):
        return nn.Embed(self.code_count, self.code_dim, name="embedding")(codes)


class VQGANDecoder(nn.Module):
    """Codes [B, H*W] int -> float32 image [B, res, res, 3], about [0, 1], unclipped."""

    config: VQGANConfig

    @nn.compact
    def __call__(self, codes):
        config = self.config
        batch_count, code_count = codes.shape
        side = math.isqrt(code_count)
        if side * side != code_count:
            raise ValueError(f"{code_count} codes do not form a square grid")
        z = Codebook(config.n_embed, config.embed_dim, name="quantize")(codes)
        # Row-major, NHWC: code i sits at row i // side, column i % side.
        z = z.reshape(batch_count, side, side, config.embed_dim)
        z = conv(config.z_channels, 1, "post_quant_conv")(z)
        return Decoder(config, name="decoder")(z)


# ---------------------------------------------------------------------------------------------
# Parameter trees


@functools.cache
def abstract_decode_params(config: VQGANConfig) -> dict:
    """The decode-path tree as ShapeDtypeStructs, from an init that allocates nothing."""
    codes = jax.ShapeDtypeStruct((1, config.code_grid_side**2), jnp.int32)
    variables = jax.eval_shape(VQGANDecoder(config).init, jax.random.key(0), codes)
    return variables["params"]


def decode_path_params(params: dict) -> dict:
    """Drop the branches decoding never reads (`encoder`, `quant_conv`)."""
    return {name: params[name] for name in DECODE_PATH_BRANCHES if name in params}


def squeeze_old_group_norms(params: dict) -> dict:
    """Checkpoints from flax < 0.3.6 store GroupNorm scale/bias as (1, 1, 1, C); today's is (C,)."""
    flat = flatten_dict(params)
    for path, value in flat.items():
        if (
            path[-1] in ("scale", "bias")
            and np.ndim(value) == 4
            and np.shape(value)[:3] == (1, 1, 1)
        ):
            flat[path] = np.reshape(value, np.shape(value)[-1])
    return unflatten_dict(flat)


def check_decode_params(params: dict, config: VQGANConfig) -> None:
    """Raise ValueError naming the first missing, unexpected or wrong-shaped parameter."""
    expected = flatten_dict(abstract_decode_params(config), sep="/")
    found = flatten_dict(params, sep="/")
    for key in sorted(expected.keys() | found.keys()):
        if key not in found:
            raise ValueError(
                f"VQGAN parameter {key} is missing (expected shape {expected[key].shape})"
            )
        if key not in expected:
            raise ValueError(f"VQGAN parameter {key} is not part of this config's decoder")
        if tuple(np.shape(found[key])) != expected[key].shape:
            raise ValueError(
                f"VQGAN parameter {key} has shape {tuple(np.shape(found[key]))}, "
                f"expected {expected[key].shape}"
            )


# ---------------------------------------------------------------------------------------------
# Files


def save_vqgan(folder: Path, config: VQGANConfig, params: dict) -> None:
    """Write config.json and flax_model.msgpack as the published checkpoint has them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_values = {"architectures": ["VQModel"], **config.to_dict()}
    (folder / CONFIG_FILE_NAME).write_text(json.dumps(config_values, indent=2) + "\n")
    host_params = jax.tree.map(np.asarray, params)
    (folder / PARAMS_FILE_NAME).write_bytes(flax.serialization.msgpack_serialize(host_params))


def load_vqgan(folder: Path) -> tuple[VQGANConfig, dict]:
    """Read a vqgan-jax checkpoint folder; returns the config and float32 decode-path params.

    Raises:
        ValueError: a decode-path parameter is missing, unexpected or has the wrong shape.
    """
    folder = Path(folder)
    config = VQGANConfig.from_dict(json.loads((folder / CONFIG_FILE_NAME).read_text()))
    tree = flax.serialization.msgpack_restore((folder / PARAMS_FILE_NAME).read_bytes())
    params = squeeze_old_group_norms(decode_path_params(tree))
    check_decode_params(params, config)
    return config, jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float32), params)


# ---------------------------------------------------------------------------------------------
# Decoding to pixels


@functools.cache
def _jitted_decode_to_uint8(config: VQGANConfig):
    """One compiled decode per config (jit caches per input shape on top of that)."""
    decoder = VQGANDecoder(config)

    def decode(params, codes):
        # The VQGAN always runs in float32, as both reference pipelines keep it.
        params = jax.tree.map(lambda leaf: leaf.astype(jnp.float32), params)
        image = decoder.apply({"params": params}, codes)
        # Output is read as [0, 1]; clip, scale and truncate like the reference pipelines.
        return (jnp.clip(image, 0.0, 1.0) * 255).astype(jnp.uint8)

    return jax.jit(decode)


def decode_to_uint8(params: dict, config: VQGANConfig, codes) -> np.ndarray:
    """Codes [B, H*W] ints in [0, n_embed) -> RGB pixels [B, res, res, 3] uint8.

    Raises:
        ValueError: codes are not a [B, side*side] batch or fall outside the codebook.
    """
    if config.give_pre_end:
        raise ValueError("give_pre_end configs return features, not pixels")
    codes = np.asarray(codes)
    if codes.ndim != 2 or math.isqrt(codes.shape[1]) ** 2 != codes.shape[1]:
        raise ValueError(f"codes must be [batch, side*side], got shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= config.n_embed):
        raise ValueError(
            f"codes must lie in [0, {config.n_embed}), got {codes.min()}..{codes.max()}"
        )
    decode = _jitted_decode_to_uint8(config)
    return np.asarray(decode(decode_path_params(params), codes.astype(np.int32)))
