"""min-dalle generating one image, timed: the outside reference our pipeline's speed is read against.

STYLE 18: a benchmark measures our hot path beside a floor in the same run. For image generation
the floor is another implementation of the same model, kuprel/min-dalle (PyPI `min-dalle`,
PyTorch), run through its own code path as its README shows a user running it:
`MinDalle.generate_image` tokenizes, encodes, takes 256 `decoder.sample_tokens` steps and
detokenizes, in fp32, with torch on every core (the thread count min-dalle sets when imported).

Only the construction is ours. `MinDalle.__init__` downloads its tokenizer and weights, so
`min_dalle_model` builds the object without it, giving it min-dalle's modules at our config's sizes
holding our weights (converted by tests/min_dalle_layout.py): both implementations run the same
model. The sampling knobs are the reference's defaults our pipeline uses (server/defaults.py),
not min-dalle's own (top-k 256, super-conditioning 16; §4.2 of
shared/reference/dalle-mini-architecture.md).

bench/bench_pipeline.py runs this file in a subprocess, so the peak memory it reports is
min-dalle's alone. Read both peaks from the JSON: the process restarts its high-water mark once the
weights are loaded, so a parent's `RUSAGE_CHILDREN` or `time -v` sees only the later peak. Run
from the repo root:

    python bench/min_dalle_image.py [--seed N] [--weights-seed N] [--token-ids 0,...,2] [--png PATH]

It builds random weights of the published mini's shapes and prints one line of JSON.
"""

import argparse
import gc
import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # before our own imports: run as a script, bench/ is the path

from minidalle.config import DalleBartConfig
from minidalle.encoder import TEXT_PAD_ID
from server import defaults

GRID_SIZE = 1  # one image
MIN_DALLE_TEXT_TOKEN_COUNT = 64  # generate_raw_image_stream builds its text rows this wide
EXAMPLE_PROMPT_TOKEN_COUNT = 12  # <s>, 10 words' ids, </s>; min-dalle encodes all 64 either way
FIRST_ORDINARY_TEXT_ID = 5  # after <s>, <pad>, </s>, <unk>, <mask>
BOS_TEXT_ID, EOS_TEXT_ID = 0, 2


class PretokenizedText:
    """Stands in for min-dalle's TextTokenizer, returning ids tokenized beforehand.

    min-dalle's tokenizer is not dalle-mini's (no text normaliser, non-ASCII dropped, split on
    spaces only: §5.3 of the reference), so one prompt would reach the two implementations as
    different ids. Both get the same ids instead; the text min-dalle is given is ignored.
    """

    def __init__(self, token_ids: list[int]):
        self.token_ids = token_ids

    def tokenize(self, text: str, is_verbose: bool = False) -> list[int]:
        return self.token_ids


def min_dalle_model(config: DalleBartConfig, params: dict, vqgan_params: dict):
    """A `MinDalle` holding our weights at config's sizes, built without its downloading __init__.

    Sets every attribute __init__ sets except the file paths, which only its loaders read.
    """
    # Imported here: importing min_dalle sets torch globals (no autograd, every core; STYLE 7).
    from min_dalle import MinDalle

    from tests.min_dalle_layout import (
        min_dalle_decoder,
        min_dalle_detokenizer,
        min_dalle_encoder,
    )

    if config.max_text_length != MIN_DALLE_TEXT_TOKEN_COUNT:
        raise ValueError(f"min-dalle hard-codes {MIN_DALLE_TEXT_TOKEN_COUNT} text tokens")
    model = MinDalle.__new__(MinDalle)
    model.device = "cpu"
    model.dtype = torch.float32
    model.is_mega = False  # read only by its downloaders
    model.is_reusable = True  # keep the modules: False would reload them from files per image
    model.is_verbose = False
    model.text_token_count = config.max_text_length
    model.layer_count = config.decoder_layers  # sizes its KV cache, [L, 4N, 256, d]
    model.attention_head_count = config.decoder_attention_heads
    model.embed_count = config.d_model
    model.glu_embed_count = config.decoder_ffn_dim
    model.text_vocab_count = config.encoder_vocab_size
    model.image_vocab_count = config.image_vocab_size
    model.tokenizer = None  # set per prompt by time_generation
    model.encoder = min_dalle_encoder(config, params)
    model.decoder = min_dalle_decoder(config, params)
    model.detokenizer = min_dalle_detokenizer(vqgan_params)
    return model


def time_generation(model, token_ids, seed: int) -> dict:
    """One image from token_ids through `model.generate_image`, timed (weights already loaded).

    Args:
        token_ids: the prompt's ids, `<s>` first and `</s>` last; trailing `<pad>`s are dropped,
            as min-dalle pads the row itself and takes its end token from the last id.
        seed: min-dalle seeds torch with it only when it is > 0 (its rule).
    Returns: {"seconds": the whole generation, "seconds_per_token_step": the 256-step decoder
        loop's time per step, "image": [256, 256, 3] uint8}.
    """
    token_ids = [int(token_id) for token_id in token_ids]
    while token_ids and token_ids[-1] == TEXT_PAD_ID:
        token_ids.pop()
    model.tokenizer = PretokenizedText(token_ids)

    step_starts, step_ends = [], []
    sample_tokens = model.decoder.sample_tokens

    def timed_sample_tokens(*args, **kwargs):
        step_starts.append(time.perf_counter())
        result = sample_tokens(*args, **kwargs)
        step_ends.append(time.perf_counter())
        return result

    model.decoder.sample_tokens = timed_sample_tokens  # it calls the attribute, so this is seen
    thread_count = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count())
    try:
        with torch.no_grad():
            start = time.perf_counter()
            image = model.generate_image(
                text="",
                seed=seed,
                grid_size=GRID_SIZE,
                temperature=defaults.TEMPERATURE_DEFAULT,
                top_k=defaults.TOP_K_DEFAULT,
                supercondition_factor=defaults.CONDITION_SCALE_DEFAULT,
            )
            seconds = time.perf_counter() - start
    finally:
        del model.decoder.sample_tokens
        torch.set_num_threads(thread_count)
    # The loop's span, so the Python around each step (min-dalle's, per token) is counted too.
    loop_seconds = step_ends[-1] - step_starts[0]
    return {
        "seconds": seconds,
        "seconds_per_token_step": loop_seconds / len(step_ends),
        "image": np.asarray(image, dtype=np.uint8),
    }


def time_one_image(
    config: DalleBartConfig, params: dict, vqgan_params: dict, token_ids, seed: int
) -> dict:
    """min-dalle's time for one image of our model (DalleBart params and VQGAN tree, numpy).

    Loading the weights is not timed; see `time_generation` for token_ids, seed and the result.
    """
    return time_generation(min_dalle_model(config, params, vqgan_params), token_ids, seed)


def example_prompt(config: DalleBartConfig, seed: int) -> list[int]:
    """<s>, ordinary ids (never <pad>), </s>: a short prompt's shape without a tokenizer."""
    rng = np.random.default_rng(seed)
    word_ids = rng.integers(
        FIRST_ORDINARY_TEXT_ID, config.encoder_vocab_size, EXAMPLE_PROMPT_TOKEN_COUNT - 2
    )
    return [BOS_TEXT_ID, *word_ids.tolist(), EOS_TEXT_ID]


def reset_peak_rss() -> bool:
    """Restart the process's peak RSS (ru_maxrss too) from its current RSS, so a later reading is
    the peak of what follows; Linux ≥ 4.0, False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def main(argv=None) -> None:
    from minidalle.random_weights import random_params, random_vqgan_params
    from minidalle.vqgan import VQGANConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="sampling seed (min-dalle seeds torch only when > 0); default 1",
    )
    parser.add_argument("--weights-seed", type=int, default=0, help="random weights; default 0")
    parser.add_argument(
        "--token-ids",
        help="the prompt's ids, comma-separated, <s> to </s>; "
        f"default {EXAMPLE_PROMPT_TOKEN_COUNT} random ones",
    )
    parser.add_argument("--png", type=Path, help="also save the image here")
    args = parser.parse_args(argv)
    # min-dalle wraps each step in the deprecated `torch.cuda.amp.autocast`, which warns (and,
    # without CUDA, says it is disabled); the warnings change nothing that runs.
    warnings.filterwarnings("ignore", message=".*torch.cuda.amp.autocast.*")
    warnings.filterwarnings("ignore", message=".*CUDA is not available.*")

    config = DalleBartConfig()
    if args.token_ids:
        token_ids = [int(token_id) for token_id in args.token_ids.split(",")]
    else:
        token_ids = example_prompt(config, args.seed)
    params = random_params(config, args.weights_seed)
    vqgan_params = random_vqgan_params(VQGANConfig(), args.weights_seed)
    model = min_dalle_model(config, params, vqgan_params)
    del params, vqgan_params  # our numpy trees: what is left resident is min-dalle's
    gc.collect()
    loading_peak_rss_kib = peak_rss_kib()
    is_reset = reset_peak_rss()

    load_averages = [os.getloadavg()[0]]
    result = time_generation(model, token_ids, args.seed)
    load_averages.append(os.getloadavg()[0])
    generation_peak_rss_kib = peak_rss_kib()
    if args.png:
        from PIL import Image

        Image.fromarray(result["image"]).save(args.png)
    report = {
        "implementation": "min-dalle, fp32, cpu",
        "torch": torch.__version__,
        "seconds": round(result["seconds"], 3),
        "seconds_per_token_step": round(result["seconds_per_token_step"], 4),
        "torch_threads": os.cpu_count(),
        "load_average_1min_before_after": [round(load, 2) for load in load_averages],
        # Whole process: building random weights in numpy and converting them peak here.
        "peak_rss_kib": max(loading_peak_rss_kib, generation_peak_rss_kib),
        "peak_rss_bytes": 1024 * max(loading_peak_rss_kib, generation_peak_rss_kib),
        # Since loading, once our numpy trees were freed: min-dalle's modules and generation.
        "generation_peak_rss_kib": generation_peak_rss_kib if is_reset else None,
        "token_ids": token_ids,
        "seed": args.seed,
        "image_mean": round(float(result["image"].mean()), 2),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
