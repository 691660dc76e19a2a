"""Our DalleBart against an independent one: min-dalle's PyTorch encoder and decoder.

min-dalle's modules take their sizes as constructor arguments, so both sides run the same small
random model: the one `write_tiny_checkpoint` writes in the published layout (§2 of
shared/reference/dalle-mini-architecture.md). tests/min_dalle_layout.py converts our tree to
min-dalle's parameter names, following the table in §2.1. The first two tests sharpen the weights
(see `sharpened`) so that a wrong mask or a misplaced norm would show.

min-dalle differs from the reference in ways that would hide the comparison, so we sidestep them:
- its tokenizer is not dalle-mini's (§5.3): both sides get token ids, not text;
- its start token is 16383, the reference's 16384 (§4.2): both decoders are fed token ids, BOS
  included, so they see the same start token;
- it builds the text mask from the ids (`ids != 1`): our masks are built the same way.

Its decoder runs one token at a time through its own KV cache (`attention_state`, §4.2), so
comparing its 256 steps with our teacher-forced pass also checks our causal masking against an
independent cache, and the greedy test checks our cached generation loop end to end. Each test
runs on both backends: plain JAX (what a GPU runs) and minidalle/cpu's kernels.
"""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("min_dalle")  # importing it sets torch globals: no autograd, every core

from flax.traverse_util import flatten_dict, unflatten_dict

from minidalle.checkpoint import load_params, unscan_layers
from minidalle.config import DalleBartConfig
from minidalle.cpu import CPU_KERNELS
from minidalle.encoder import TEXT_PAD_ID
from minidalle.model import DalleBart
from minidalle.pipeline import Pipeline
from minidalle.tiny import write_tiny_checkpoint
from tests.conftest import MODEL_BACKENDS
from tests.min_dalle_layout import min_dalle_decoder, min_dalle_encoder, torch_module

NORM_SPREAD = 0.2  # norm scales ~ 1 ± 0.2, biases ~ ±0.2
IMAGE_COUNT = 2  # min-dalle's decoder runs each image twice (unconditional rows, then prompt rows)

# Largest |ours − theirs| as a share of the largest |theirs|; fp32 on both sides.
# The tiny checkpoint (seed 0), sharpened, gives 6.4e-7 for the encoder states, 7.3e-7 for logits.
ENCODER_TOLERANCE = 1e-5
LOGITS_TOLERANCE = 1e-5
CONDITION_SCALE = 10.0
# Two super-conditioned logits closer than this count as a tie the two sides may break apart:
# logit errors (above) times the (2s − 1) that u + s·(c − u) can amplify them by.
TIE_TOLERANCE = 2 * CONDITION_SCALE * LOGITS_TOLERANCE


def min_dalle_modules(config: DalleBartConfig, params: dict):
    """min-dalle's encoder and decoder at config's sizes, holding params, for batches of any size."""
    encoder = min_dalle_encoder(config, params)
    # Its position ids are [2, 64], sized for its own batch (unconditional + prompt); one row
    # broadcasts over any batch.
    encoder.pose_tokens = torch.arange(config.max_text_length)[None]
    return encoder, min_dalle_decoder(config, params)


def min_dalle_logits(decoder, text_ids: np.ndarray, encoder_state, tokens: np.ndarray):
    """min-dalle's decoder stepped over all 256 positions, fed tokens [N,256] (BOS first).

    Its rows are the N images twice, against encoder rows [0, N) and then [N, 2N).
    Args:
        text_ids: [2N,64] the encoder's input, from which it builds its cross-attention mask.
        encoder_state: [2N,64,d] torch.
    Returns: logits [2N,256,V] fp32, step t's logits at position t.
    """
    row_count = text_ids.shape[0]
    text_ids = torch.from_numpy(text_ids).long()
    attention_mask = text_ids.not_equal(TEXT_PAD_ID)[:, None, None, :]
    # keys in rows [0, 2N), values in [2N, 4N), per layer and position (§4.2)
    attention_state = torch.zeros(
        (decoder.layer_count, 2 * row_count, tokens.shape[1], decoder.embed_count)
    )
    tokens = torch.from_numpy(tokens).long()
    steps = []
    with torch.no_grad():
        for position in range(tokens.shape[1]):
            logits, attention_state = decoder.forward(
                attention_mask=attention_mask,
                encoder_state=encoder_state,
                attention_state=attention_state,
                prev_tokens=tokens[:, [position]],
                token_index=torch.tensor([position]),
            )
            steps.append(logits[:, 0])
    return torch.stack(steps, dim=1).numpy()


def relative_gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def sharpened(params: dict, config: DalleBartConfig, seed: int) -> dict:
    """params with kernels and embeddings rescaled to std 1/sqrt(d_model), and every norm's scale
    and bias drawn away from 1 and 0.

    At the tiny checkpoint's init_std (0.02) every softmax is nearly uniform and every norm is the
    identity, so a wrong mask, head split or norm mapping would barely move the output."""
    rng = np.random.default_rng(seed)
    gain = np.float32(config.d_model**-0.5 / config.init_std)
    flat = flatten_dict(params, sep="/")
    for key, value in flat.items():
        if key.endswith(("/kernel", "/embedding")):
            flat[key] = value * gain
        elif key.endswith("/scale"):
            flat[key] = (1 + NORM_SPREAD * rng.standard_normal(value.shape)).astype(np.float32)
        elif key.endswith("/bias"):  # use_bias is off: every bias is a norm's
            flat[key] = (NORM_SPREAD * rng.standard_normal(value.shape)).astype(np.float32)
    return unflatten_dict(flat, sep="/")


def padded_rows(prompts: list, length: int) -> np.ndarray:
    """Token-id rows [P, length], right-padded with <pad> as the tokenizer pads them."""
    rows = np.full((len(prompts), length), TEXT_PAD_ID, np.int32)
    for row, prompt in zip(rows, prompts):
        row[: len(prompt)] = prompt
    return rows


def random_prompt(rng, token_count: int, vocab_size: int) -> list:
    """<s>, token_count − 2 ordinary ids (none of them <pad>), </s>."""
    return [0, *rng.integers(5, vocab_size, token_count - 2).tolist(), 2]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """min-dalle sets torch to every core; on these tiny matrices threads only contend with JAX's
    (256 decoder steps: 51 s on two threads, 3 s on one, on a busy 2-core machine)."""
    thread_count = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(thread_count)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """One tiny checkpoint for the module, written as `dalleq weights tiny` writes it."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def config(checkpoint):
    return DalleBartConfig.load(checkpoint)


@pytest.fixture(scope="module")
def params(checkpoint, config):
    return sharpened(load_params(checkpoint, config), config, seed=1)


@pytest.fixture(scope="module")
def text_ids(config):
    """[2N,64]: the empty prompt, then prompts of 9, 64 and 30 tokens."""
    rng = np.random.default_rng(2)
    return padded_rows(
        [[0, 2]] + [random_prompt(rng, count, config.encoder_vocab_size) for count in (9, 64, 30)],
        config.max_text_length,
    )


@pytest.fixture(params=MODEL_BACKENDS)
def backend(request):
    if request.param == "cpu":
        request.getfixturevalue("cpu_kernels")
    return request.param


def on_backend(backend: str, config: DalleBartConfig, params: dict):
    """(config, params, use_scan) for DalleBart on `backend`: plain JAX reads the published
    stacked tree; the CPU kernels read the unscanned, packed tree a pipeline gives them."""
    if backend == "xla":
        return config, params, True
    config, params = CPU_KERNELS.prepare(config, unscan_layers(params, config))
    assert config.backend is CPU_KERNELS
    return config, params, False


def test_torch_names():
    assert torch_module("encoder", "LayerNorm_1") == "self_attn_layer_norm"
    assert torch_module("decoder", "LayerNorm_2") == "pre_encoder_attn_layer_norm"
    assert torch_module("decoder", "FlaxBartAttention_1/k_proj") == "encoder_attn.k_proj"
    assert torch_module("decoder", "GLU_0/Dense_2") == "glu.fc2"


def test_encoder_states_agree(backend, config, params, text_ids):
    encoder, _ = min_dalle_modules(config, params)
    mask = (text_ids != TEXT_PAD_ID).astype(np.int32)  # min-dalle's own rule
    assert mask[0].sum() == 2 and mask[2].all(), "want padded and unpadded rows"

    config, params, use_scan = on_backend(backend, config, params)
    encode = jax.jit(lambda p, i, m: DalleBart(config, use_scan).apply(
        {"params": p}, i, m, method=DalleBart.encode))
    ours = np.asarray(encode(params, text_ids, mask))
    with torch.no_grad():
        theirs = encoder.forward(torch.from_numpy(text_ids).long()).numpy()

    assert ours.shape == theirs.shape == (4, config.max_text_length, config.d_model)
    assert relative_gap(ours, theirs) < ENCODER_TOLERANCE


def test_teacher_forced_logits_agree_with_stepped_decoder(backend, config, params, text_ids):
    encoder, decoder = min_dalle_modules(config, params)
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, config.code_count, (IMAGE_COUNT, config.image_length)).astype(np.int32)
    tokens[:, 0] = config.decoder_start_token_id  # 16384, not min-dalle's 16383 (§4.2)

    with torch.no_grad():
        encoder_state = encoder.forward(torch.from_numpy(text_ids).long())
    theirs = min_dalle_logits(decoder, text_ids, encoder_state, tokens)

    mask = (text_ids != TEXT_PAD_ID).astype(np.int32)
    decoder_tokens = np.concatenate([tokens, tokens])  # min-dalle's row order
    config, params, use_scan = on_backend(backend, config, params)
    forward = jax.jit(lambda p, i, m, t: DalleBart(config, use_scan).apply({"params": p}, i, m, t))
    ours = np.asarray(forward(params, text_ids, mask, decoder_tokens))

    assert ours.shape == theirs.shape == (4, config.image_length, config.image_token_count)
    assert relative_gap(ours, theirs) < LOGITS_TOLERANCE
    # Rows 0 and 2 see the same image tokens under different prompts: the prompt must matter,
    # or the cross-attention would go unchecked.
    assert np.abs(theirs[0] - theirs[2]).max() > 0.1 * np.abs(theirs).max()


def test_greedy_generation_matches_min_dalle(backend, checkpoint, config):
    pipeline = Pipeline.load(checkpoint, compilation_cache_dir=False, backend=backend)
    assert pipeline.config.backend.name == backend
    rng = np.random.default_rng(4)
    prompts = [random_prompt(rng, count, config.encoder_vocab_size) for count in (7, 20)]

    ours = pipeline.generate_tokens(
        [np.asarray(p) for p in prompts], seed=0, top_k=1, condition_scale=CONDITION_SCALE
    )

    # min-dalle from the same checkpoint file, its rows unconditional first (§4.2)
    encoder, decoder = min_dalle_modules(config, load_params(checkpoint, config))
    unconditional_ids, _ = pipeline.tokenizer.encode_unconditional()
    text_ids = np.concatenate(
        [
            np.repeat(unconditional_ids, len(prompts), axis=0),
            padded_rows(prompts, config.max_text_length),
        ]
    )
    with torch.no_grad():
        encoder_state = encoder.forward(torch.from_numpy(text_ids).long())
    # What greedy decoding feeds min-dalle wherever it picks what we picked; a step where the
    # two part ways is then only a tie, not a cascade of different tokens.
    fed = np.concatenate(
        [np.full((len(prompts), 1), config.decoder_start_token_id), ours[:, :-1]], axis=1
    )
    logits = min_dalle_logits(decoder, text_ids, encoder_state, fed)[..., : pipeline.code_count]
    unconditional, conditional = logits[: len(prompts)], logits[len(prompts) :]
    # its sample_tokens' super-conditioning, then top-k 1
    mixed = unconditional * (1 - CONDITION_SCALE) + conditional * CONDITION_SCALE
    theirs = mixed.argmax(axis=-1)

    best = mixed.max(axis=-1)
    ours_logit = np.take_along_axis(mixed, ours[..., None], axis=-1)[..., 0]
    is_tie = best - ours_logit <= TIE_TOLERANCE * np.abs(logits).max()
    assert np.all((theirs == ours) | is_tie)
    assert (theirs == ours).mean() > 0.99
    assert not np.array_equal(ours[0], ours[1]), "the prompt should steer the codes"
