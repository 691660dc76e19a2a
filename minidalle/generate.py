"""The image-token generation loop: encode prompts once, then 256 cached decoder steps (§4.1).

Rows of a batch are tiles. Each tile carries its own prompt, key and sampling knobs, and nothing a
tile computes reads another row, so a tile's codes depend only on the weights, its prompt, its
knobs, its seed and its index (the key is `fold_in(PRNGKey(seed), tile_index)`, then
`fold_in(key, step)` per step). Prompts are encoded one at a time for the same reason.

With super-conditioning the decoder runs 2n rows per step, the n conditional rows then the same n
tiles under the empty prompt, so one read of the weights serves both (min-dalle's batching, §4.2).

The loop is one jitted function per batch shape that runs `chunk_steps` steps in a `fori_loop`;
the host calls it 256 / chunk_steps times, which is where progress is reported, where a caller
can stop a job (STYLE 16: no Python loop per token), and where it may look at the codes drawn so
far to decode a preview (min-dalle's progressive outputs, §4.2). Looking copies them to the host
and changes nothing the loop computes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .backend import Backend
from .config import DalleBartConfig
from .decoder import DalleBartDecoder, KeysValues, cross_keys_values, init_caches
from .encoder import SCANNED_ENCODER_LAYERS, DalleBartEncoder
from .sampling import candidate_count_for, sample_tokens, super_condition

CHUNK_STEPS = 16

ProgressCallback = Callable[[int, int], None]  # (steps done, steps in all); raise to stop
# (steps done, codes so far [n, S] int32: a host copy whose columns from `steps done` on are 0)
CodesCallback = Callable[[int, np.ndarray], None]


class TileRows(NamedTuple):
    """One row per tile, all [n]: which encoded prompt it uses and its own seed, index and knobs."""

    prompt_index: np.ndarray  # int32
    seed: np.ndarray  # uint32
    tile_index: np.ndarray  # int32
    temperature: np.ndarray  # float32 > 0
    top_k: np.ndarray  # int32, 0 = off
    top_p: np.ndarray  # float32, 1.0 = off
    condition_scale: np.ndarray  # float32, 1.0 = off


class SampleState(NamedTuple):
    codes: jax.Array  # [n, S] int32: the tokens drawn so far
    previous: jax.Array  # [R] int32: each decoder row's last token (BOS before step 0)
    caches: list  # per layer KeysValues [R, H, S, D]


class EncodedPrompt(NamedTuple):
    crosses: list  # per decoder layer, cross-attention KeysValues [1,H,Te,D]
    mask: jax.Array  # [1,Te] int32, 1 on real tokens


ENCODER_WIDTH_STEP = 16


def encode_prompt(config: DalleBartConfig, encoder_params, decoder_layers_params, ids, mask):
    """One prompt's ids and mask [1,Te] → its EncodedPrompt.

    The encoder sees the prompt's positions up to its last real token, rounded up to a multiple of
    16, not all Te: padding is masked out of every encoder attention, so the real tokens' states
    are the same, and a typical prompt costs a quarter of the work. Past that width the cross-attention keys and
    values are zeros, which the mask hides like the padding they stand for."""
    mask = np.asarray(mask)
    real_positions = np.flatnonzero(mask[0])
    used = int(real_positions[-1]) + 1 if real_positions.size else 1
    width = min(mask.shape[-1], -(-used // ENCODER_WIDTH_STEP) * ENCODER_WIDTH_STEP)
    crosses = _encode(config, encoder_params, decoder_layers_params, jnp.asarray(ids)[:, :width],
                      jnp.asarray(mask[:, :width]), total_width=mask.shape[-1])
    return EncodedPrompt(crosses, jnp.asarray(mask))


@functools.partial(jax.jit, static_argnames=("config", "total_width"))
def _encode(config: DalleBartConfig, encoder_params, decoder_layers_params, ids, mask, *,
            total_width: int):
    use_scan = SCANNED_ENCODER_LAYERS in encoder_params["layers"]
    states = DalleBartEncoder(config, use_scan).apply({"params": encoder_params}, ids, mask)
    padding = ((0, 0), (0, 0), (0, total_width - ids.shape[-1]), (0, 0))
    return [KeysValues(jnp.pad(kv.keys, padding), jnp.pad(kv.values, padding))
            for kv in cross_keys_values(config, decoder_layers_params, states)]


@jax.jit
def tile_keys(seeds, tile_indices):
    """[n] uint32 seeds and [n] tile indices → [n,2] uint32 keys, fold_in(PRNGKey(seed), tile)."""
    return jax.vmap(lambda s, t: jax.random.fold_in(jax.random.PRNGKey(s), t))(seeds, tile_indices)


def run_steps(config: DalleBartConfig, decoder_params, lm_head_kernel, state: SampleState, start,
              crosses, cross_is_visible, keys, temperature, top_k, top_p, condition_scale, *,
              step_count: int, candidate_count: int, code_count: int, is_superconditioned: bool):
    """Steps start..start+step_count-1 of the loop; compiled_steps jits it per batch shape."""
    decoder = DalleBartDecoder(config, use_scan=False)
    tile_count = keys.shape[0]

    def step(offset, state: SampleState) -> SampleState:
        position = start + offset
        hidden, caches = decoder.apply(
            {"params": decoder_params}, state.previous[:, None], position, state.caches, crosses,
            cross_is_visible,
        )
        (logits,) = config.backend.dense(hidden[:, 0], [lm_head_kernel],
                                         [config.image_token_count], jnp.float32)
        logits = logits[:, :code_count]  # never draw BOS or mega's unused rows (§3.4)
        if is_superconditioned:
            logits = super_condition(logits[:tile_count], logits[tile_count:], condition_scale)
        step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, position)
        tokens = sample_tokens(logits, step_keys, temperature, top_k, top_p, candidate_count)
        previous = jnp.concatenate([tokens, tokens]) if is_superconditioned else tokens
        codes = jax.lax.dynamic_update_slice(state.codes, tokens[:, None], (0, position))
        return SampleState(codes, previous, caches)

    return jax.lax.fori_loop(0, step_count, step, state)


STEP_STATIC_ARGNAMES = ("config", "step_count", "candidate_count", "code_count",
                        "is_superconditioned")


@functools.cache
def compiled_steps(backend: Backend):
    """run_steps, jitted with the backend's compiler options."""
    return jax.jit(
        run_steps,
        static_argnames=STEP_STATIC_ARGNAMES,
        donate_argnames=("state",),  # the KV caches are updated in place, not copied every chunk
        compiler_options=backend.loop_compiler_options(),
    )


def generate_codes(config: DalleBartConfig, params, encoded_prompts: list[EncodedPrompt],
                   encoded_unconditional: EncodedPrompt,
                   rows: TileRows, code_count: int, on_progress: ProgressCallback | None = None,
                   chunk_steps: int = CHUNK_STEPS,
                   on_codes: CodesCallback | None = None) -> np.ndarray:
    """Sample every tile's image codes.

    Args:
        params: the model tree with its layers unscanned (`checkpoint.unscan_layers`).
        encoded_prompts: per prompt, its EncodedPrompt.
        encoded_unconditional: the same for the empty prompt.
        rows: one entry per tile.
        on_progress, on_codes: called after each chunk, in that order.
    Returns: codes [n, image_length] int32, each < code_count.
    """
    tile_count = len(rows.seed)
    is_superconditioned = bool(np.any(rows.condition_scale != 1.0))
    row_prompts = [encoded_prompts[i] for i in rows.prompt_index]
    if is_superconditioned:
        row_prompts += [encoded_unconditional] * tile_count
    crosses = [KeysValues(jnp.concatenate([p.crosses[layer].keys for p in row_prompts]),
                          jnp.concatenate([p.crosses[layer].values for p in row_prompts]))
               for layer in range(config.decoder_layers)]
    cross_is_visible = jnp.concatenate([p.mask for p in row_prompts])[:, None, None, :] > 0
    row_count = len(row_prompts)
    state = SampleState(
        codes=jnp.zeros((tile_count, config.image_length), jnp.int32),
        previous=jnp.full((row_count,), config.decoder_start_token_id, jnp.int32),
        caches=init_caches(config, row_count, use_scan=False),
    )
    keys = tile_keys(jnp.asarray(rows.seed, jnp.uint32), jnp.asarray(rows.tile_index, jnp.int32))
    knobs = {
        "temperature": jnp.asarray(rows.temperature, jnp.float32),
        "top_k": jnp.asarray(rows.top_k, jnp.int32),
        "top_p": jnp.asarray(rows.top_p, jnp.float32),
        "condition_scale": jnp.asarray(rows.condition_scale, jnp.float32),
    }
    candidate_count = candidate_count_for(rows.top_k, code_count)
    decoder_params = params["model"]["decoder"]
    lm_head_kernel = params["lm_head"]["kernel"]
    total = config.image_length
    for start in range(0, total, chunk_steps):
        step_count = min(chunk_steps, total - start)
        state = compiled_steps(config.backend)(
            config, decoder_params, lm_head_kernel, state, jnp.int32(start), crosses,
            cross_is_visible, keys, **knobs, step_count=step_count,
            candidate_count=candidate_count, code_count=code_count,
            is_superconditioned=is_superconditioned,
        )
        if on_progress is not None:
            state.codes.block_until_ready()
            on_progress(start + step_count, total)
        if on_codes is not None:
            # a copy: the next chunk is given state.codes' buffer to update in place (donated)
            on_codes(start + step_count, np.array(state.codes, copy=True))
    return np.asarray(state.codes)
