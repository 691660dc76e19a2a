"""One sampling step on the decoder's logits: super-conditioning, temperature, top-k, top-p, draw.

The order and formulas are the reference's (§4.1.3: HF's warpers, then Gumbel-max). Every knob is a
per-row array so jobs with different parameters can share one batch, and every function is pure so
it can be tested on hand-made logits (STYLE 15).

Two choices keep a tile independent of the batch it runs in:
- candidates come from one `lax.top_k` whose width is a compile-time bucket, and each row then
  keeps its own k of them (the width never changes a row's answer);
- the Gumbel noise is the noise `jax.random.gumbel(key, (V,))` would give each code of the
  vocabulary, from the row's own key, but computed only at the candidates (Threefry is a counter
  hash: code i's noise needs only the key and i), so the draw is exactly
  `jax.random.categorical(key, masked_logits)` whatever the width or the other rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NEGATIVE_INFINITY = -jnp.inf


def super_condition(logits_conditional, logits_unconditional, condition_scale):
    """u + s·(c − u) per row (§4.1.3c); a row with s = 1 gets c exactly.
    logits [B,V] fp32, condition_scale [B]."""
    scale = condition_scale[:, None]
    mixed = logits_unconditional + scale * (logits_conditional - logits_unconditional)
    return jnp.where(scale == 1.0, logits_conditional, mixed)


def apply_temperature(logits, temperature):
    """logits / T per row; T = 1 leaves them bit-identical."""
    return logits / temperature[:, None]


def candidate_count_for(top_k_values, code_count: int) -> int:
    """Static width of the candidate list for a batch: enough for its largest k, rounded up to a
    power of two so batches share compiled programs; the whole vocabulary when a row has k = 0."""
    top_k_values = [int(k) for k in top_k_values]
    largest = max(top_k_values)
    if min(top_k_values) <= 0 or largest >= code_count:
        return code_count
    return min(code_count, 1 << (largest - 1).bit_length())


def top_candidates(logits, candidate_count: int):
    """The candidate_count largest logits per row, sorted descending: (values, indices) [B,K]."""
    return jax.lax.top_k(logits, candidate_count)


def keep_top_k(sorted_logits, top_k):
    """Mask all but each row's top_k first candidates; top_k = 0 keeps them all. top_k [B] int."""
    rank = jnp.arange(sorted_logits.shape[-1])[None, :]
    keep = (top_k[:, None] <= 0) | (rank < top_k[:, None])
    return jnp.where(keep, sorted_logits, NEGATIVE_INFINITY)


def keep_top_p(sorted_logits, top_p):
    """Nucleus filter (HF's rule): keep a candidate while the probability of those before it is
    below top_p, so the first always stays. top_p [B]; 1.0 keeps everything."""
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = (mass_before < top_p[:, None]) | (top_p[:, None] >= 1.0)
    return jnp.where(keep, sorted_logits, NEGATIVE_INFINITY)


THREEFRY_PARITY = 0x1BD11BDA
THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry_2x32(key, count_high, count_low):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011, as JAX's PRNG uses it): key (k0, k1) of
    uint32 arrays, counter words of any broadcastable shape → the two uint32 output words."""
    schedule = (key[0], key[1], key[0] ^ key[1] ^ jnp.uint32(THREEFRY_PARITY))
    x0, x1 = count_high + schedule[0], count_low + schedule[1]
    for group in range(5):
        for rotation in THREEFRY_ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(rotation)) | (x1 >> jnp.uint32(32 - rotation))
            x1 = x1 ^ x0
        x0 = x0 + schedule[(group + 1) % 3]
        x1 = x1 + schedule[(group + 2) % 3] + jnp.uint32(group + 1)
    return x0, x1


def gumbel_noise_at(keys, indices):
    """The Gumbel noise `jax.random.gumbel(key, (V,), float32)` gives codes `indices`, per row:
    keys [B,2] uint32, indices [B,C] int → [B,C] fp32.

    Why not draw over the vocabulary and gather: that hashed 16384 counters per tile per step for
    the ~50 that top-k keeps, and XLA split the hash over its threads, waking them every step
    (2% of a 2x2 grid's step). JAX's partitionable Threefry gives element i of a 1-D draw the
    counter (0, i) and xors the two output words; `uniform` keeps 23 of those bits as the mantissa
    of [1, 2), shifts to [tiny, 1), and `gumbel` is −log(−log(u)) of that."""
    high, low = threefry_2x32((keys[:, 0:1], keys[:, 1:2]), jnp.uint32(0),
                              indices.astype(jnp.uint32))
    mantissa = ((high ^ low) >> jnp.uint32(9)) | jnp.uint32(0x3F800000)
    tiny = jnp.float32(jnp.finfo(jnp.float32).tiny)
    uniform = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - jnp.float32(1)
    uniform = jnp.maximum(tiny, uniform * (jnp.float32(1) - tiny) + tiny)
    return -jnp.log(-jnp.log(uniform))


def draw(sorted_logits, sorted_indices, keys):
    """Gumbel-max over the candidates, each with its vocabulary index's noise → tokens [B]."""
    noise = gumbel_noise_at(keys, sorted_indices)
    choice = jnp.argmax(sorted_logits + noise, axis=-1)
    return jnp.take_along_axis(sorted_indices, choice[:, None], axis=-1)[:, 0]


def sample_tokens(logits, keys, temperature, top_k, top_p, candidate_count: int):
    """The warpers and the draw, in the reference's order. logits [B,V] fp32 (codes only), keys
    [B,2] uint32 for this step, knobs [B]. Returns tokens [B] int32."""
    logits = apply_temperature(logits, temperature)
    values, indices = top_candidates(logits, candidate_count)
    values = keep_top_p(keep_top_k(values, top_k), top_p)
    return draw(values, indices, keys).astype(jnp.int32)
