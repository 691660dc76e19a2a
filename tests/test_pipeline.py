"""The public pipeline on a random checkpoint written to disk in the published format, run on
each backend: plain JAX (what a GPU runs) and minidalle/cpu's kernels."""

import io

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp
from PIL import Image

from minidalle.checkpoint import abstract_params, load_params
from minidalle.config import DalleBartConfig
from minidalle.grid import make_grid, png_bytes
from minidalle.model import DalleBart
from minidalle.pipeline import Pipeline
from tests.conftest import MODEL_BACKENDS, load_on

PROMPT = "a painting of a fox in the snow"
BOS = 16384


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_pipeline_on_each_backend):
    """Every test here that takes the pipeline runs once on each backend."""
    return tiny_pipeline_on_each_backend


def teacher_forced_logits(pipeline, checkpoint, codes, prompt=PROMPT, dtype="fp32"):
    """Logits [256, 16384] of the scanned, uncached model in plain JAX for (prompt, empty prompt)
    given the codes as decoder input: an independent path to the cached generation loop."""
    config = DalleBartConfig.load(checkpoint).replace(dtype=dtype)
    params = load_params(checkpoint, config)
    tokens = jnp.asarray(np.concatenate([[BOS], codes[:-1]])[None], jnp.int32)
    model = DalleBart(config)
    out = []
    for ids, mask in (pipeline.tokenizer.encode(prompt), pipeline.tokenizer.encode_unconditional()):
        logits = model.apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask), tokens)
        out.append(np.asarray(logits[0, :, :16384]))
    return out


def test_generate_tokens_and_images_have_the_published_shapes(tiny_pipeline):
    codes = tiny_pipeline.generate_tokens(PROMPT, seed=1, n=2)
    assert codes.shape == (2, 256) and codes.dtype == np.int32
    assert codes.min() >= 0 and codes.max() < 16384
    pixels = tiny_pipeline.decode_tokens(codes)
    assert pixels.shape == (2, 256, 256, 3) and pixels.dtype == np.uint8
    images = tiny_pipeline.generate(PROMPT, seed=1, n=2)
    assert [image.size for image in images] == [(256, 256)] * 2
    assert all(image.mode == "RGB" for image in images)
    assert np.array_equal(np.asarray(images[1]), pixels[1])


def test_same_seed_same_bytes_other_seed_other_images(tiny_pipeline):
    first = [png_bytes(image) for image in tiny_pipeline.generate(PROMPT, seed=5, n=2)]
    again = [png_bytes(image) for image in tiny_pipeline.generate(PROMPT, seed=5, n=2)]
    other = [png_bytes(image) for image in tiny_pipeline.generate(PROMPT, seed=6, n=2)]
    assert first == again
    assert first[0] != first[1]  # tiles of one job differ (seed, index)
    assert not set(first) & set(other)


def test_a_tile_is_the_same_alone_or_inside_a_batch_of_other_prompts(tiny_pipeline):
    alone = tiny_pipeline.generate_tokens(PROMPT, seed=11, n=4, top_k=50)
    single = tiny_pipeline.generate_tokens(PROMPT, seed=11, n=1, top_k=50)
    batch = tiny_pipeline.generate_tokens(
        ["a robot reading a book", PROMPT, "pixel art of a dragon"], seed=[3, 11, 4], n=4,
        top_k=50,
    )
    assert np.array_equal(batch[4:8], alone)
    assert np.array_equal(single[0], alone[0])
    assert not np.array_equal(batch[0:4], alone)


def test_mixed_parameters_share_a_batch_and_keep_their_own_results(tiny_pipeline):
    from minidalle.pipeline import GenerationRequest, SamplingParams

    greedy = SamplingParams(top_k=1, condition_scale=3.0)
    nucleus = SamplingParams(top_k=0, top_p=0.9, temperature=0.7, condition_scale=1.0)
    # two tiles with top-k off: each sorts all 16384 codes at every step, the test's main cost
    requests = [GenerationRequest(PROMPT, 2, 1, greedy), GenerationRequest("a cat", 9, 2, nucleus)]
    together = tiny_pipeline.generate_batch(requests)
    apart = [tiny_pipeline.generate_batch([request])[0] for request in requests]
    assert [codes.shape for codes in together] == [(1, 256), (2, 256)]
    for joint, alone in zip(together, apart):
        assert np.array_equal(joint, alone)


def test_greedy_top_k_one_follows_the_teacher_forced_argmax(tiny_pipeline, tiny_checkpoint):
    codes = tiny_pipeline.generate_tokens(PROMPT, seed=0, n=1, top_k=1, condition_scale=10.0)[0]
    conditional, unconditional = teacher_forced_logits(tiny_pipeline, tiny_checkpoint, codes)
    expected = np.argmax(unconditional + 10.0 * (conditional - unconditional), axis=-1)
    assert np.array_equal(codes, expected)


def test_condition_scale_one_is_plain_conditional_sampling(tiny_pipeline, tiny_checkpoint):
    """Each drawn code equals jax.random.categorical over the conditional logits kept by top-k,
    with the key derived from (seed, tile index, step) alone."""
    seed, tile, top_k = 21, 2, 50
    codes = tiny_pipeline.generate_tokens(PROMPT, seed=seed, n=3, top_k=top_k,
                                          condition_scale=1.0)[tile]
    conditional, _ = teacher_forced_logits(tiny_pipeline, tiny_checkpoint, codes)
    tile_key = jax.random.fold_in(jax.random.PRNGKey(seed), tile)
    for step in range(256):
        logits = jnp.asarray(conditional[step])
        threshold = jnp.sort(logits)[-top_k]
        masked = jnp.where(logits >= threshold, logits, -jnp.inf)
        drawn = jax.random.categorical(jax.random.fold_in(tile_key, step), masked)
        assert int(drawn) == codes[step], f"step {step}"


def test_bf16_logits_are_close_to_fp32(tiny_pipeline, tiny_checkpoint):
    codes = tiny_pipeline.generate_tokens(PROMPT, seed=3, n=1)[0]
    full = teacher_forced_logits(tiny_pipeline, tiny_checkpoint, codes)[0]
    half = teacher_forced_logits(tiny_pipeline, tiny_checkpoint, codes, dtype="bf16")[0]
    scale = np.abs(full).max()
    assert np.abs(full - half).max() < 0.03 * scale
    assert np.corrcoef(full.ravel(), half.ravel())[0, 1] > 0.999


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
def test_bf16_pipeline_holds_bf16_weights_and_generates(backend, request, tiny_checkpoint,
                                                        jax_cache_dir):
    pipeline = load_on(backend, request, tiny_checkpoint, dtype="bf16",
                       compilation_cache_dir=jax_cache_dir)
    kernel = pipeline.params["model"]["decoder"]["layers"]["FlaxBartDecoderLayer_0"]["GLU_0"][
        "Dense_0"]["kernel"]
    assert kernel.dtype == jnp.bfloat16
    assert kernel.ndim == (3 if backend == "cpu" else 2)
    if backend == "cpu":  # packed for the CPU kernels: the rest of the decoder is fp32, once
        decoder = pipeline.params["model"]["decoder"]
        assert decoder["embed_tokens"]["embedding"].dtype == jnp.float32
        assert decoder["final_ln"]["bias"].dtype == jnp.float32
        assert pipeline.config.cache_dtype == jnp.bfloat16  # the KV cache stays half the bytes
        encoder_layer = pipeline.params["model"]["encoder"]["layers"]["FlaxBartEncoderLayer_0"]
        assert encoder_layer["GLU_0"]["Dense_0"]["kernel"].ndim == 3  # one layer, packed too
    images = pipeline.generate(PROMPT, seed=1, n=1)
    assert images[0].size == (256, 256)


def test_progress_is_reported_in_chunks_and_raising_stops(tiny_pipeline):
    seen = []
    tiny_pipeline.generate_tokens(PROMPT, seed=1, n=1, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(step, 256) for step in range(16, 257, 16)]

    class Stop(Exception):
        pass

    def stop_at_half(done, total):
        if done >= total // 2:
            raise Stop

    with pytest.raises(Stop):
        tiny_pipeline.generate_tokens(PROMPT, seed=1, n=1, on_progress=stop_at_half)


def test_the_codes_drawn_so_far_are_seen_at_each_chunk_and_looking_changes_nothing(tiny_pipeline):
    from minidalle.pipeline import GenerationRequest

    requests = [GenerationRequest(PROMPT, seed=3, n=2), GenerationRequest("a cat", seed=4, n=1)]
    seen = {}
    watched = tiny_pipeline.generate_batch(
        requests, on_codes=lambda done, codes: seen.setdefault(done, codes))
    unwatched = tiny_pipeline.generate_batch(requests)
    for with_look, without in zip(watched, unwatched):
        np.testing.assert_array_equal(with_look, without)
    assert sorted(seen) == list(range(16, 257, 16))
    for done, codes_per_request in seen.items():
        for so_far, final in zip(codes_per_request, watched):
            np.testing.assert_array_equal(so_far[:, :done], final[:, :done])
            assert not so_far[:, done:].any()  # not drawn yet


def test_a_partial_decode_greys_the_code_rows_not_yet_finished(tiny_pipeline):
    codes = tiny_pipeline.generate_tokens(PROMPT, seed=5, n=1)
    side = tiny_pipeline.vqgan_config.code_grid_side
    pixels_per_row = 256 // side
    for steps_done in (0, 2 * side + 3, 256):  # nothing, two rows and a bit, everything
        (image,) = tiny_pipeline.decode_partial(codes, steps_done)
        finished_pixel_rows = (steps_done // side) * pixels_per_row
        assert (image[finished_pixel_rows:] == 128).all()
        assert image.shape == (256, 256, 3)
    np.testing.assert_array_equal(tiny_pipeline.decode_partial(codes, 256),
                                  tiny_pipeline.decode_tokens(codes))


def test_token_ids_can_be_given_directly(tiny_pipeline):
    ids, mask = tiny_pipeline.tokenizer.encode(PROMPT)
    direct = tiny_pipeline.generate_tokens(ids[0][mask[0] > 0], seed=4, n=1)
    via_text = tiny_pipeline.generate_tokens(PROMPT, seed=4, n=1)
    assert np.array_equal(direct, via_text)
    with pytest.raises(ValueError):
        tiny_pipeline.generate_tokens(np.arange(65), seed=4, n=1)


def test_unconditional_prompt_and_truncation(tiny_pipeline):
    ids, mask = tiny_pipeline.tokenizer.encode_unconditional()
    assert ids[0, :3].tolist() == [0, 2, 1] and mask[0, :3].tolist() == [1, 1, 0]
    ids, mask = tiny_pipeline.tokenizer.encode("snow " * 200)
    assert ids.shape == (1, 64) and mask.all() and ids[0, 0] == 0 and ids[0, 63] == 2


def test_a_prompt_is_encoded_at_its_own_width_with_the_full_widths_result(tiny_pipeline):
    """The encoder sees a short prompt's first 16 positions only; the real tokens' cross-attention
    keys/values equal those of encoding all 64, and the rest are zeros the mask hides."""
    from minidalle.generate import _encode

    ids, mask = tiny_pipeline.tokenizer.encode(PROMPT)
    length = int(mask.sum())
    assert length <= 16
    encoded = tiny_pipeline.encode(PROMPT)
    params = tiny_pipeline.params["model"]
    full = _encode(tiny_pipeline.config, params["encoder"], params["decoder"]["layers"],
                   jnp.asarray(ids), jnp.asarray(mask), total_width=64)
    np.testing.assert_array_equal(encoded.mask, mask)
    for short_kv, full_kv in zip(encoded.crosses, full):
        for short, whole in zip(short_kv, full_kv):
            assert short.shape == whole.shape
            np.testing.assert_allclose(short[:, :, :length], whole[:, :, :length],
                                       rtol=1e-5, atol=1e-6)
            assert not np.asarray(short[:, :, 16:]).any()


def test_decode_rejects_codes_outside_the_codebook(tiny_pipeline):
    with pytest.raises(ValueError):
        tiny_pipeline.decode_tokens(np.full((1, 256), 16384))


def test_grid_places_tiles_row_by_row():
    tiles = [np.full((4, 4, 3), value, np.uint8) for value in (10, 20, 30, 40)]
    grid = np.asarray(make_grid(tiles))
    assert grid.shape == (8, 8, 3)
    assert [grid[0, 0, 0], grid[0, 7, 0], grid[7, 0, 0], grid[7, 7, 0]] == [10, 20, 30, 40]
    assert np.asarray(make_grid(tiles[:1])).shape == (4, 4, 3)
    with pytest.raises(ValueError):
        make_grid(tiles[:3])


def test_png_metadata_round_trips():
    data = png_bytes(Image.new("RGB", (8, 8)), {"prompt": "a fox", "seed": 7,
                                                "params": {"top_k": 50}})
    image = Image.open(io.BytesIO(data))
    assert image.text["prompt"] == "a fox"
    assert image.text["seed"] == "7"
    assert image.text["params"] == '{"top_k": 50}'


def test_persistent_compilation_cache_is_written(tiny_pipeline, jax_cache_dir):
    tiny_pipeline.generate_tokens(PROMPT, seed=1, n=1)
    assert any(jax_cache_dir.iterdir())


MINI = DalleBartConfig()
MEGA = MINI.replace(d_model=2048, encoder_layers=24, decoder_layers=24,
                    encoder_attention_heads=32, decoder_attention_heads=32, encoder_ffn_dim=4096,
                    decoder_ffn_dim=4096, encoder_vocab_size=50272, image_vocab_size=16415)


@pytest.mark.parametrize("config, width, layers, ffn, text_rows, image_rows, total", [
    (MINI, 1024, 12, 2730, 50264, 16385, 437_833_712),
    (MEGA, 2048, 24, 4096, 50272, 16416, 2_587_521_024),
])
def test_parameter_tree_matches_the_reference_shapes(config, width, layers, ffn, text_rows,
                                                     image_rows, total):
    from flax.traverse_util import flatten_dict

    shapes = {key: tuple(leaf.shape)
              for key, leaf in flatten_dict(abstract_params(config), sep="/").items()}
    enc = "model/encoder/layers/FlaxBartEncoderLayers/"
    dec = "model/decoder/layers/FlaxBartDecoderLayers/"
    expected = {
        "model/encoder/embed_tokens/embedding": (text_rows, width),
        "model/encoder/embed_positions/embedding": (64, width),
        "model/encoder/layernorm_embedding/scale": (width,),
        "model/encoder/final_ln/bias": (width,),
        enc + "LayerNorm_0/bias": (layers, width),
        enc + "FlaxBartAttention_0/q_proj/kernel": (layers, width, width),
        enc + "LayerNorm_1/scale": (layers, width),
        enc + "GLU_0/Dense_0/kernel": (layers, width, ffn),
        enc + "GLU_0/LayerNorm_1/bias": (layers, ffn),
        enc + "GLU_0/Dense_2/kernel": (layers, ffn, width),
        "model/decoder/embed_tokens/embedding": (image_rows, width),
        "model/decoder/embed_positions/embedding": (256, width),
        dec + "FlaxBartAttention_1/v_proj/kernel": (layers, width, width),
        dec + "LayerNorm_3/scale": (layers, width),
        dec + "LayerNorm_2/bias": (layers, width),
        "lm_head/kernel": (width, image_rows),
    }
    assert {key: shapes.get(key) for key in expected} == expected
    assert len(shapes) == 42
    assert sum(int(np.prod(shape)) for shape in shapes.values()) == total
    # Bias-only norms (force_ln_scale=false) have no scale at all.
    assert "model/decoder/final_ln/scale" not in shapes
    assert enc + "LayerNorm_0/scale" not in shapes


def test_loader_names_a_misshapen_parameter(tiny_checkpoint, tmp_path):
    import shutil

    from minidalle.checkpoint import read_msgpack, save_params

    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    params = read_msgpack(broken / "flax_model.msgpack")
    params["lm_head"]["kernel"] = params["lm_head"]["kernel"][:, :100]
    save_params(broken, params)
    with pytest.raises(ValueError, match="lm_head/kernel"):
        Pipeline.load(broken, compilation_cache_dir=False)


def test_unsupported_switches_are_refused():
    with pytest.raises(ValueError, match="use_deepnet_scaling"):
        DalleBartConfig.from_dict({"use_deepnet_scaling": True})
