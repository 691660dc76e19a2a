"""One sampling step on the decoder's logits: super-conditioning, temperature, top-k, top-p, draw.

The order and formulas are the reference's (§4.1.3: HF's warpers, then Gumbel-max). Every knob is a
per-row array so jobs with different parameters can share one batch, and every function is pure so
it can be tested on hand-made logits (STYLE 15).

Two choices keep a tile independent of the batch it runs in:
- candidates come from one `lax.top_k` whose width is a compile-time bucket, and each row then
  keeps its own k of them (the width never changes a row's answer);
- the Gumbel noise is drawn over the whole code vocabulary from the row's own key, then read at
  the candidates, so the draw is exactly `jax.random.categorical(key, masked_logits)` whatever the
  width or the other rows.
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


def gumbel_noise(keys, code_count: int):
    """Per-row Gumbel noise over the whole vocabulary: keys [B,2] uint32 → [B,V] fp32."""
    return jax.vmap(lambda key: jax.random.gumbel(key, (code_count,), jnp.float32))(keys)


def draw(sorted_logits, sorted_indices, noise):
    """Gumbel-max over the candidates with noise read at their vocabulary index → tokens [B]."""
    candidate_noise = jnp.take_along_axis(noise, sorted_indices, axis=-1)
    choice = jnp.argmax(sorted_logits + candidate_noise, axis=-1)
    return jnp.take_along_axis(sorted_indices, choice[:, None], axis=-1)[:, 0]


def sample_tokens(logits, keys, temperature, top_k, top_p, candidate_count: int):
    """The warpers and the draw, in the reference's order. logits [B,V] fp32 (codes only), keys
    [B,2] uint32 for this step, knobs [B]. Returns tokens [B] int32."""
    logits = apply_temperature(logits, temperature)
    values, indices = top_candidates(logits, candidate_count)
    values = keep_top_p(keep_top_k(values, top_k), top_p)
    return draw(values, indices, gumbel_noise(keys, logits.shape[-1])).astype(jnp.int32)
