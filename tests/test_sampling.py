"""The sampling step's pure functions on hand-made logits (STYLE 15, 17)."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp

from minidalle import sampling


def test_super_condition_mixes_per_row_and_keeps_scale_one_exact():
    cond = jnp.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3]])
    uncond = jnp.array([[0.5, 0.5, 0.5], [0.3, 0.1, 0.7]])
    mixed = sampling.super_condition(cond, uncond, jnp.array([10.0, 1.0]))
    np.testing.assert_allclose(mixed[0], [0.5 + 10 * 0.5, 0.5 + 10 * 1.5, 0.5 + 10 * 2.5], rtol=1e-6)
    assert np.array_equal(np.asarray(mixed[1]), np.asarray(cond[1]))  # bit-exact, not u + (c - u)


def test_temperature_divides_and_one_is_identity():
    logits = jnp.array([[2.0, -4.0], [0.3, 0.7]])
    scaled = sampling.apply_temperature(logits, jnp.array([2.0, 1.0]))
    np.testing.assert_array_equal(scaled, np.float32([[1.0, -2.0], [0.3, 0.7]]))


def test_keep_top_k_per_row_and_zero_keeps_all():
    sorted_logits = jnp.array([[5.0, 4.0, 3.0, 2.0], [9.0, 8.0, 7.0, 6.0]])
    kept = np.asarray(sampling.keep_top_k(sorted_logits, jnp.array([2, 0])))
    assert np.isfinite(kept[0]).tolist() == [True, True, False, False]
    assert np.isfinite(kept[1]).all()


def test_keep_top_p_keeps_the_smallest_prefix_reaching_p():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    sorted_logits = jnp.asarray(np.log(probs)[None].repeat(3, 0), jnp.float32)
    kept = np.isfinite(np.asarray(sampling.keep_top_p(sorted_logits, jnp.array([0.7, 0.85, 1.0]))))
    assert kept[0].tolist() == [True, True, False, False]  # 0.5 < 0.7, so the 0.3 joins
    assert kept[1].tolist() == [True, True, True, False]  # 0.85 is reached only with 0.15 in
    assert kept[2].all()
    tiny = np.isfinite(np.asarray(sampling.keep_top_p(sorted_logits[:1], jnp.array([0.01]))))
    assert tiny[0].tolist() == [True, False, False, False]  # the first always stays


def test_candidate_count_buckets_to_powers_of_two():
    assert sampling.candidate_count_for([50], 16384) == 64
    assert sampling.candidate_count_for([1, 3], 16384) == 4
    assert sampling.candidate_count_for([64], 16384) == 64
    assert sampling.candidate_count_for([50, 0], 16384) == 16384  # a row without top-k
    assert sampling.candidate_count_for([20000], 16384) == 16384


def test_noise_at_the_candidates_is_bit_for_bit_jax_gumbel_over_the_vocabulary():
    """Hashing only the candidates' counters gives exactly the noise a whole-vocabulary
    jax.random.gumbel draw has at those codes (so a JAX upgrade that changes it fails here)."""
    vocabulary = 16384
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(
        jax.random.split(jax.random.PRNGKey(3), 5), 17)
    indices = jax.random.randint(jax.random.PRNGKey(4), (5, 64), 0, vocabulary)
    indices = indices.at[:, 0].set(0).at[:, 1].set(vocabulary - 1)
    noise = np.asarray(sampling.gumbel_noise_at(keys, indices))
    for row in range(5):
        full = np.asarray(jax.random.gumbel(keys[row], (vocabulary,), jnp.float32))
        assert np.array_equal(noise[row], full[np.asarray(indices[row])])


def test_draw_equals_categorical_over_the_masked_vocabulary():
    """Gumbel noise at the candidates' vocabulary indices gives exactly
    jax.random.categorical on the logits masked to those candidates, whatever the width."""
    vocabulary = 300
    logits = jax.random.normal(jax.random.PRNGKey(1), (4, vocabulary)) * 3
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    top_k = jnp.array([5, 17, 1, 40])
    ones = jnp.ones(4)
    expected = []
    for row in range(4):
        threshold = jnp.sort(logits[row])[-int(top_k[row])]
        masked = jnp.where(logits[row] >= threshold, logits[row], -jnp.inf)
        expected.append(int(jax.random.categorical(keys[row], masked)))
    for width in (64, 128, vocabulary):
        tokens = sampling.sample_tokens(logits, keys, ones, top_k, ones, width)
        assert np.asarray(tokens).tolist() == expected
    assert expected[2] == int(jnp.argmax(logits[2]))  # top_k = 1 is greedy


def test_draw_follows_the_distribution():
    """Over many keys, frequencies match softmax(logits / T) on the kept candidates."""
    logits = jnp.log(jnp.array([[0.6, 0.3, 0.1]]))
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    draw = jax.vmap(lambda key: sampling.sample_tokens(
        logits, key[None], jnp.ones(1), jnp.zeros(1, jnp.int32), jnp.ones(1), 3)[0])
    counts = np.bincount(np.asarray(draw(keys)), minlength=3) / 4000
    np.testing.assert_allclose(counts, [0.6, 0.3, 0.1], atol=0.03)


def test_the_queues_defaults_are_the_pipelines():
    """The API's defaults (server/defaults.py, shared/API.md) and SamplingParams (the reference
    notebook's) live in layers that may not import each other; they must stay the same."""
    import dataclasses

    from minidalle.pipeline import SamplingParams
    from server.validation import DEFAULT_PARAMS

    assert DEFAULT_PARAMS == dataclasses.asdict(SamplingParams())
