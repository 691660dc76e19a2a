"""How much device memory a DalleBart needs, computed from its config alone (issue 19).

Nothing here allocates a model array or touches a device: the parameter count is closed-form from
the config's sizes, following the tree of shared/reference/dalle-mini-architecture.md §2 (what
model.py, encoder.py, decoder.py and blocks.py build), and checked against
`checkpoint.abstract_params` by tests/test_memory_plan.py. So `dalleq weights info mega` answers
before the 10 GB download, and the worker refuses a model the device cannot hold before loading it.

What is counted, per dtype and for a batch of `image_count` images:
- weights: every parameter at the dtype's width. int8 is weight-only: each dense `kernel` (lm_head
  included) is int8 [K, N] plus one fp32 scale per output column [N]; embeddings, norms, biases and
  head_scale stay in the activation dtype, bf16 on a GPU (the plan assumes bf16; a CPU runs them in
  fp32, which adds a few percent).
- KV cache: with super-conditioning each image is 2 decoder rows (generate.py). Self-attention:
  decoder_layers x (k, v) x rows x image_length x d_model; cross-attention keys/values over
  max_text_length, the same way. fp32 for fp32, else bf16 (the cache follows the activations).
- activations (an estimate, see `activation_bytes`): each step's logits, the widest layer's
  temporaries, one prompt's encoder pass, one transient dequantised kernel in int8, and the VQGAN
  (fp32 weights, one 256x256 image decoded at a time, as Pipeline.decode_tokens does).

XLA's own workspace and the CUDA context are not counted: the totals are what the model needs, so a
device should have some room to spare beyond them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

from .config import DalleBartConfig
from .vqgan import VQGANConfig

PLAN_DTYPES = ("fp32", "bf16", "int8")  # the table's columns, widest first
BYTES_FROM_DTYPE = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}
INT8_ACTIVATION_DTYPE = "bf16"  # what int8's other parameters and activations are kept in (GPU)
INT8_SCALE_BYTES = 4  # one fp32 scale per output column of each kernel
LOGITS_BYTES = 4  # logits are always fp32 (model.py)
ROWS_PER_IMAGE = 2  # super-conditioning: each image's row, then the same under the empty prompt
# Each step's logits live as the raw [rows, V], the super-conditioned [n, V] and the sampler's
# sorted or masked copy [n, V] (sampling.py): about 3 [rows, V] arrays at the peak.
LOGITS_COPIES = 3
# Live temporaries of one layer's step beside its input: q, k, v, the GLU's two halves and their
# product, and the output (blocks.py); a generous bound, they are small next to the cache.
LAYER_TEMPORARY_COPIES = 4
# The VQGAN's peak while decoding one image: the input of a block, its two convolution outputs and
# the normalised copy at the finest resolution (vqgan.py ResnetBlock).
VQGAN_LIVE_COPIES = 4
VQGAN_DTYPE_BYTES = 4  # the VQGAN always runs in fp32
BYTE_UNITS = ("B", "kB", "MB", "GB", "TB")
PUBLISHED_VQGAN = VQGANConfig()  # its defaults are dalle-mini/vqgan_imagenet_f16_16384's


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a float dtype name; ValueError for names the plan does not know."""
    try:
        return BYTES_FROM_DTYPE[dtype.lower()]
    except KeyError:
        raise ValueError(
            f"unknown dtype {dtype!r}; the plan knows {', '.join(PLAN_DTYPES)} and fp16"
        ) from None


def activation_dtype(dtype: str) -> str:
    """The dtype activations and the KV cache are kept in: int8 weights compute in bf16."""
    return INT8_ACTIVATION_DTYPE if dtype.lower() == "int8" else dtype


# ---------------------------------------------------------------------------------------------
# Parameter counts, block by block as blocks.py builds them


@dataclasses.dataclass(frozen=True)
class ParamCount:
    """Parameters split the way int8 stores them: dense kernels (and their output columns, one
    scale each) and everything else (embeddings, norms, biases, head_scale)."""

    kernel_count: int = 0
    kernel_column_count: int = 0
    other_count: int = 0

    @property
    def total(self) -> int:
        return self.kernel_count + self.other_count

    def __add__(self, other: ParamCount) -> ParamCount:
        return ParamCount(self.kernel_count + other.kernel_count,
                          self.kernel_column_count + other.kernel_column_count,
                          self.other_count + other.other_count)

    def __mul__(self, times: int) -> ParamCount:
        return ParamCount(self.kernel_count * times, self.kernel_column_count * times,
                          self.other_count * times)


def dense_params(config: DalleBartConfig, in_count: int, out_count: int) -> ParamCount:
    return ParamCount(in_count * out_count, out_count, out_count if config.use_bias else 0)


def norm_params(config: DalleBartConfig, width: int, is_scaled: bool) -> ParamCount:
    """LayerNorm: bias, plus scale when scaled; RMSNorm: scale when scaled, nothing else."""
    if config.ln_type == "rmsnorm":
        return ParamCount(other_count=width if is_scaled else 0)
    return ParamCount(other_count=width * (2 if is_scaled else 1))


def feeds_dense_norm_params(config: DalleBartConfig, width: int) -> ParamCount:
    """A norm that feeds a dense layer: bias only unless force_ln_scale (§1.2)."""
    return norm_params(config, width, config.force_ln_scale)


def attention_params(config: DalleBartConfig, head_count: int) -> ParamCount:
    """q, k, v and out projections, d_model square, and head_scale [1,1,H,1] when on."""
    projections = dense_params(config, config.d_model, config.d_model) * 4
    return projections + ParamCount(other_count=head_count if config.use_head_scale else 0)


def feed_forward_params(config: DalleBartConfig, ffn_dim: int) -> ParamCount:
    """GLU (two input matrices) or the plain FFN (one), each with its pre- and mid-norm."""
    d_model = config.d_model
    input_matrices = dense_params(config, d_model, ffn_dim) * (2 if config.use_glu else 1)
    return (feeds_dense_norm_params(config, d_model) + input_matrices
            + feeds_dense_norm_params(config, ffn_dim) + dense_params(config, ffn_dim, d_model))


def attention_branch_params(config: DalleBartConfig, head_count: int) -> ParamCount:
    """Pre-norm, attention and the scaled post-norm of one residual branch."""
    return (feeds_dense_norm_params(config, config.d_model) + attention_params(config, head_count)
            + norm_params(config, config.d_model, is_scaled=True))


def encoder_layer_params(config: DalleBartConfig) -> ParamCount:
    return (attention_branch_params(config, config.encoder_attention_heads)
            + feed_forward_params(config, config.encoder_ffn_dim))


def decoder_layer_params(config: DalleBartConfig) -> ParamCount:
    """Self-attention and cross-attention branches, then the feed-forward."""
    return (attention_branch_params(config, config.decoder_attention_heads) * 2
            + feed_forward_params(config, config.decoder_ffn_dim))


def stack_params(config: DalleBartConfig, vocab_count: int, position_count: int,
                 layer: ParamCount, layer_count: int, has_final_norm: bool) -> ParamCount:
    """Token and position embeddings, the embedding norm, the layers and the final norm."""
    d_model = config.d_model
    embeddings = ParamCount(other_count=(vocab_count + position_count) * d_model)
    final = feeds_dense_norm_params(config, d_model) if has_final_norm else ParamCount()
    return (embeddings + norm_params(config, d_model, is_scaled=True) + layer * layer_count
            + final)


def param_count(config: DalleBartConfig) -> ParamCount:
    """The DalleBart's parameters: encoder, decoder and lm_head (§2), exactly."""
    encoder = stack_params(config, config.encoder_vocab_size, config.max_text_length,
                           encoder_layer_params(config), config.encoder_layers,
                           config.use_final_ln_encoder)
    decoder = stack_params(config, config.image_token_count, config.image_length,
                           decoder_layer_params(config), config.decoder_layers,
                           config.use_final_ln_decoder)
    return encoder + decoder + dense_params(config, config.d_model, config.image_token_count)


def vqgan_decode_param_count(config: VQGANConfig) -> int:
    """Parameters of the VQGAN's decode path (codebook, post_quant_conv, decoder; vqgan.py)."""

    def conv(in_count: int, out_count: int, side: int) -> int:
        return side * side * in_count * out_count + out_count

    def group_norm(width: int) -> int:
        return 2 * width

    def resnet(in_count: int, out_count: int) -> int:
        shortcut = conv(in_count, out_count, 1) if in_count != out_count else 0
        return (group_norm(in_count) + conv(in_count, out_count, 3) + group_norm(out_count)
                + conv(out_count, out_count, 3) + shortcut)

    def attention(width: int) -> int:
        return group_norm(width) + 4 * conv(width, width, 1)  # q, k, v, proj_out

    width = config.ch * config.ch_mult[-1]
    count = (config.n_embed * config.embed_dim + conv(config.embed_dim, config.z_channels, 1)
             + conv(config.z_channels, width, 3) + 2 * resnet(width, width) + attention(width))
    resolution = config.code_grid_side
    for level in reversed(range(config.level_count)):
        out_width = config.ch * config.ch_mult[level]
        for _ in range(config.num_res_blocks + 1):
            count += resnet(width, out_width)
            width = out_width
            if resolution in config.attn_resolutions:
                count += attention(width)
        if level != 0 and config.resamp_with_conv:
            count += conv(width, width, 3)
        resolution *= 2
    if not config.give_pre_end:
        count += group_norm(width) + conv(width, config.out_ch, 3)
    return count


# ---------------------------------------------------------------------------------------------
# Bytes


def weight_bytes(config: DalleBartConfig, dtype: str) -> int:
    """The transformer's weights at `dtype` (fp32, bf16, fp16 or int8; see the module docstring)."""
    counts = param_count(config)
    if dtype.lower() == "int8":
        return (counts.kernel_count + counts.kernel_column_count * INT8_SCALE_BYTES
                + counts.other_count * dtype_bytes(INT8_ACTIVATION_DTYPE))
    return counts.total * dtype_bytes(dtype)


def kv_cache_bytes(config: DalleBartConfig, dtype: str, image_count: int) -> int:
    """Self-attention cache over image_length plus cross-attention keys/values over
    max_text_length, for every decoder layer and every row (2 per image)."""
    row_count = ROWS_PER_IMAGE * image_count
    positions = config.image_length + config.max_text_length
    keys_and_values = 2
    return (config.decoder_layers * keys_and_values * row_count * positions * config.d_model
            * dtype_bytes(activation_dtype(dtype)))


def activation_bytes(config: DalleBartConfig, dtype: str, image_count: int,
                     vqgan_config: VQGANConfig = PUBLISHED_VQGAN) -> int:
    """An estimate of the working memory beside the weights and the cache:
    - logits [rows, image_token_count] fp32, LOGITS_COPIES of them (raw, conditioned, sampled);
    - one decoder layer's temporaries for one step: LAYER_TEMPORARY_COPIES x [rows, widest] in the
      activation dtype, and the attention weights [rows, heads, image_length] in fp32;
    - one prompt's encoder pass (prompts are encoded one at a time): [max_text_length, widest]
      temporaries and [heads, T, T] fp32 attention weights;
    - int8: one kernel dequantised to the activation dtype, the widest (lm_head);
    - the VQGAN: its fp32 decode-path weights and decoding one image (VQGAN_LIVE_COPIES of its
      finest [resolution, resolution, ch * ch_mult[0]] fp32 activation)."""
    row_count = ROWS_PER_IMAGE * image_count
    width_bytes = dtype_bytes(activation_dtype(dtype))
    widest = max(config.d_model, config.decoder_ffn_dim, config.encoder_ffn_dim)
    logits = LOGITS_COPIES * row_count * config.image_token_count * LOGITS_BYTES
    decoder_step = (LAYER_TEMPORARY_COPIES * row_count * widest * width_bytes
                    + row_count * config.decoder_attention_heads * config.image_length * 4)
    text_length = config.max_text_length
    encoder = (LAYER_TEMPORARY_COPIES * text_length * widest * width_bytes
               + config.encoder_attention_heads * text_length * text_length * 4)
    dequantised = (config.d_model * config.image_token_count * width_bytes
                   if dtype.lower() == "int8" else 0)
    vqgan_weights = vqgan_decode_param_count(vqgan_config) * VQGAN_DTYPE_BYTES
    finest = vqgan_config.resolution ** 2 * vqgan_config.ch * vqgan_config.ch_mult[0]
    vqgan_decode = VQGAN_LIVE_COPIES * finest * VQGAN_DTYPE_BYTES
    return logits + decoder_step + encoder + dequantised + vqgan_weights + vqgan_decode


@dataclasses.dataclass(frozen=True)
class MemoryNeed:
    """What one dtype needs for a batch of images, in bytes."""

    dtype: str
    image_count: int
    weight_bytes: int
    kv_cache_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes + self.activation_bytes


def memory_need(config: DalleBartConfig, dtype: str, image_count: int,
                vqgan_config: VQGANConfig = PUBLISHED_VQGAN) -> MemoryNeed:
    """Weights, KV cache and activations of `config` at `dtype` for `image_count` images."""
    if image_count < 1:
        raise ValueError(f"a batch needs at least one image, not {image_count}")
    return MemoryNeed(dtype, image_count, weight_bytes(config, dtype),
                      kv_cache_bytes(config, dtype, image_count),
                      activation_bytes(config, dtype, image_count, vqgan_config))


def format_bytes(byte_count: float) -> str:
    """1_751_334_848 → "1.8 GB": decimal units, as GPU makers and the issue count them."""
    value = float(byte_count)
    for unit in BYTE_UNITS:
        if abs(value) < 1000 or unit == BYTE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Does it fit?


@dataclasses.dataclass(frozen=True)
class Fit:
    """The answer to "can this device hold it": is_ok, and one line to print either way."""

    is_ok: bool
    message: str


def check_fit(config: DalleBartConfig, dtype: str, batch_count: int, capacity_bytes: int, *,
              model_label: str, device_label: str, dtypes: Sequence[str] = PLAN_DTYPES,
              images_per_batch_unit: int = 1, batch_flag: str = "--batch",
              vqgan_config: VQGANConfig = PUBLISHED_VQGAN) -> Fit:
    """Whether `batch_count` units of `images_per_batch_unit` images fit in `capacity_bytes` at
    `dtype`; if not, the message names another of `dtypes` that fits at this batch, else the
    largest batch that fits at `dtype` (or at the narrowest of `dtypes`), as `batch_flag N`.

    A worker's unit is a job (up to GRID_MAX² images, `--max-batch`); `weights info`'s an image.
    """
    def total_bytes(at_dtype: str, count: int) -> int:
        return memory_need(config, at_dtype, count * images_per_batch_unit,
                           vqgan_config).total_bytes

    def largest_batch(at_dtype: str) -> int:
        return largest_fitting_batch(functools.partial(total_bytes, at_dtype), batch_count - 1,
                                     capacity_bytes)

    image_count = batch_count * images_per_batch_unit
    wanted_bytes = total_bytes(dtype, batch_count)
    head = (f"{model_label} in {dtype} needs {format_bytes(wanted_bytes)} for {image_count} "
            f"image{'s' if image_count != 1 else ''} at once")
    has = f"{device_label} has {format_bytes(capacity_bytes)}"
    if wanted_bytes <= capacity_bytes:
        return Fit(True, f"{head}; {has}: it fits")
    advice = []
    other_dtype = next((other for other in dtypes if other != dtype
                        and total_bytes(other, batch_count) <= capacity_bytes), None)
    if other_dtype is not None:
        advice.append(f"--dtype {other_dtype} fits "
                      f"({format_bytes(total_bytes(other_dtype, batch_count))})")
    largest = largest_batch(dtype)
    if largest:
        advice.append(f"{batch_flag} {largest} fits in {dtype} "
                      f"({format_bytes(total_bytes(dtype, largest))})")
    if not advice:
        narrowest = min([*dtypes, dtype], key=lambda name: total_bytes(name, 1))
        largest = largest_batch(narrowest)
        advice.append(f"--dtype {narrowest} with {batch_flag} {largest} fits "
                      f"({format_bytes(total_bytes(narrowest, largest))})" if largest else
                      f"not even {batch_flag} 1 in {narrowest} fits "
                      f"({format_bytes(total_bytes(narrowest, 1))})")
    return Fit(False, f"{head}, but {has}: {', or '.join(advice)}")


def largest_fitting_batch(total_bytes_for, upper_count: int, capacity_bytes: int) -> int:
    """The largest count in 1..upper_count whose total fits, 0 if none (totals grow with count)."""
    low, high = 0, max(upper_count, 0)
    while low < high:  # invariant: low fits (or is 0), everything above high does not
        middle = (low + high + 1) // 2
        if total_bytes_for(middle) <= capacity_bytes:
            low = middle
        else:
            high = middle - 1
    return low
