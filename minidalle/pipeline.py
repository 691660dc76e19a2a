"""The public face of minidalle: load a published checkpoint, prompts in, PIL images out.

`Pipeline.load(model_dir, vqgan_dir, dtype=...)`, `generate`, `generate_tokens`, `decode_tokens`
(and `generate_batch` for workers that mix jobs, `decode_partial` for their live previews) are the
names the worker and the tests rely on.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from . import compilation_cache
from .backend import Backend, backend_named
from .checkpoint import load_params, unscan_layers
from .config import DalleBartConfig, runtime_dtypes
from .generate import EncodedPrompt, ProgressCallback, TileRows, encode_prompt, generate_codes
from .partial import fill_undrawn, grey_unfinished_rows
from .tokenizer import PromptTokenizer
from .vqgan import VQGANConfig, decode_to_uint8, load_vqgan

log = logging.getLogger(__name__)

# (steps done, codes so far: one [n, 256] int32 array per request, undrawn columns 0)
BatchCodesCallback = Callable[[int, list[np.ndarray]], None]

VQGAN_SUBFOLDER = "vqgan"  # where `dalleq weights` puts the VQGAN beside a model
UNCONDITIONAL_IDS = (0, 2)  # `<s> </s>`: the empty prompt, tokenized without normalising (§4.1.1)


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """The reference notebook's defaults (§4.1.5): condition_scale 10, top-k 50, temperature 1."""

    temperature: float = 1.0
    top_k: int = 50
    top_p: float | None = None
    condition_scale: float = 10.0

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError("temperature must be > 0")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0 (0 turns it off)")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not self.condition_scale >= 1:
            raise ValueError("condition_scale must be >= 1")


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """One job's worth of tiles: `n` images of `prompt` (text, or token ids [Te]) from `seed`."""

    prompt: str | Sequence[int]
    seed: int
    n: int = 1
    params: SamplingParams = SamplingParams()


class Pipeline:
    """A loaded DalleBart + VQGAN pair, ready to generate."""

    def __init__(self, config: DalleBartConfig, params: dict, vqgan_config: VQGANConfig,
                 vqgan_params: dict, tokenizer: PromptTokenizer | None, model_dir: Path | None):
        self.config = config
        self.params = params
        self.vqgan_config = vqgan_config
        self.vqgan_params = vqgan_params
        self.tokenizer = tokenizer
        self.model_dir = model_dir
        self.code_count = vqgan_config.n_embed
        if self.code_count > config.image_vocab_size:
            raise ValueError(f"the VQGAN has {self.code_count} codes but the model draws only "
                             f"{config.image_vocab_size}")
        self._unconditional: EncodedPrompt | None = None

    @classmethod
    def load(cls, model_dir, vqgan_dir=None, dtype="fp32",
             compilation_cache_dir: Path | None | bool = None,
             backend: str | Backend = "auto") -> Pipeline:
        """Read `model_dir` (config.json, flax_model.msgpack, tokenizer files) and the VQGAN
        (`vqgan_dir`, by default `model_dir/vqgan`). dtype: fp32, bf16 or fp16 for the
        transformer, or int8 for weight-only int8 (`config.runtime_dtypes`); the VQGAN always runs
        in fp32 (§4.1.8). compilation_cache_dir: where XLA
        programs persist across restarts (None: the default folder; False: off).
        backend: "auto", "xla" or "cpu" (`backend.backend_named`), or a Backend."""
        started = time.perf_counter()
        if compilation_cache_dir is not False:
            compilation_cache.enable(compilation_cache_dir)
        model_dir = Path(model_dir)
        vqgan_dir = Path(vqgan_dir) if vqgan_dir is not None else model_dir / VQGAN_SUBFOLDER
        config = DalleBartConfig.load(model_dir).replace(
            **runtime_dtypes(dtype, jax.default_backend()))
        config, params = cls.ready_weights(config, load_params(model_dir, config), backend)
        vqgan_config, vqgan_params = load_vqgan(vqgan_dir)
        tokenizer = PromptTokenizer(model_dir, config)
        pipeline = cls(config, params, vqgan_config, jax.device_put(vqgan_params), tokenizer,
                       model_dir)
        log.info("loaded %s (%s weights, %s backend) and %s in %.1f s", model_dir,
                 np.dtype(config.weight_dtype or config.dtype).name,
                 pipeline.config.backend.name, vqgan_dir,
                 time.perf_counter() - started)
        return pipeline

    @classmethod
    def from_params(cls, config: DalleBartConfig, params: dict, vqgan_config: VQGANConfig,
                    vqgan_params: dict, tokenizer: PromptTokenizer | None = None,
                    backend: str | Backend = "auto", model_dir: Path | None = None) -> Pipeline:
        """From weights in memory (numpy, published layout, already in config.dtype), which
        stay as the caller gave them. Without a tokenizer, prompts must be token ids."""
        config, params = cls.ready_weights(config, dict(params), backend)
        return cls(config, params, vqgan_config, jax.device_put(vqgan_params), tokenizer,
                   model_dir)

    @staticmethod
    def ready_weights(config: DalleBartConfig, params: dict,
                      backend: str | Backend = "auto") -> tuple[DalleBartConfig, dict]:
        """(config, weights) as `backend` runs them, on the device: the transformer's part of
        `from_params`. It takes `params` over and leaves it empty, so the backend can free each
        loaded tensor as it prepares its own form of it (the CPU kernels' packing): a loaded
        model is never held twice (bench/bench_load_memory.py measures the host memory)."""
        if isinstance(backend, str):
            backend = backend_named(backend)
        unscanned = unscan_layers(params, config)
        params.clear()  # the stacked layers now live on only in `unscanned`'s views
        config, unscanned = backend.prepare(config, unscanned)
        return config, jax.device_put(unscanned)

    def encode(self, prompt) -> EncodedPrompt:
        """Text (normalised and tokenized) or ids [Te] (used as given, padded with <pad>)."""
        if isinstance(prompt, str):
            ids, mask = self.tokenizer.encode(prompt)
        else:
            ids, mask = self.pad_ids(prompt)
        return encode_prompt(self.config, self.params["model"]["encoder"],
                             self.params["model"]["decoder"]["layers"], jnp.asarray(ids),
                             jnp.asarray(mask))

    def pad_ids(self, ids) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, np.int32).reshape(-1)
        length = self.config.max_text_length
        if ids.size == 0 or ids.size > length:
            raise ValueError(f"token ids must number 1..{length}, got {ids.size}")
        padded = np.full((1, length), 1, np.int32)  # <pad> = 1 (§3.4)
        padded[0, :ids.size] = ids
        mask = np.zeros((1, length), np.int32)
        mask[0, :ids.size] = 1
        return padded, mask

    def unconditional(self) -> EncodedPrompt:
        if self._unconditional is None:
            if self.tokenizer is not None:
                ids, mask = self.tokenizer.encode_unconditional()
            else:
                ids, mask = self.pad_ids(UNCONDITIONAL_IDS)
            self._unconditional = encode_prompt(
                self.config, self.params["model"]["encoder"],
                self.params["model"]["decoder"]["layers"], jnp.asarray(ids), jnp.asarray(mask))
        return self._unconditional

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_progress: ProgressCallback | None = None,
                       on_codes: BatchCodesCallback | None = None) -> list[np.ndarray]:
        """Codes for several requests in one batched run: one [n, 256] int32 array per request,
        each identical to what the request gives alone, whether or not `on_codes` looks at the
        codes drawn so far (after each progress chunk: steps done, one array per request)."""
        encoded = [self.encode(request.prompt) for request in requests]
        rows = TileRows(*(np.asarray(column) for column in zip(*(
            (index, request.seed, tile, request.params.temperature, request.params.top_k,
             1.0 if request.params.top_p is None else request.params.top_p,
             request.params.condition_scale)
            for index, request in enumerate(requests) for tile in range(request.n)
        ))))
        rows = rows._replace(seed=rows.seed.astype(np.uint32))
        bounds = np.cumsum([0] + [request.n for request in requests])

        def split(codes: np.ndarray) -> list[np.ndarray]:
            return [codes[start:end] for start, end in itertools.pairwise(bounds)]

        on_batch_codes = None
        if on_codes is not None:
            def on_batch_codes(steps_done: int, codes: np.ndarray) -> None:
                on_codes(steps_done, split(codes))

        codes = generate_codes(self.config, self.params, encoded, self.unconditional(), rows,
                               self.code_count, on_progress, on_codes=on_batch_codes)
        return split(codes)

    def generate_tokens(self, prompts, seed, n: int = 1,
                        temperature: float = SamplingParams.temperature,
                        top_k: int = SamplingParams.top_k,
                        top_p: float | None = SamplingParams.top_p,
                        condition_scale: float = SamplingParams.condition_scale,
                        on_progress: ProgressCallback | None = None) -> np.ndarray:
        """Image codes [P·n, 256] int32 for a prompt or a list of them (text, or token ids [Te]
        / [P,Te]); `seed` is one int or one per prompt. Tile i of a prompt uses (seed, i)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        elif isinstance(prompts, np.ndarray) or (
            isinstance(prompts, Sequence) and prompts and isinstance(prompts[0], (int, np.integer))
        ):
            prompts = list(np.atleast_2d(np.asarray(prompts, np.int32)))
        seeds = [seed] * len(prompts) if np.isscalar(seed) else list(seed)
        if len(seeds) != len(prompts):
            raise ValueError("give one seed, or one per prompt")
        params = SamplingParams(temperature, top_k, top_p, condition_scale)
        requests = [GenerationRequest(prompt, int(s), n, params) for prompt, s in zip(prompts, seeds)]
        return np.concatenate(self.generate_batch(requests, on_progress))

    def decode_tokens(self, tokens) -> np.ndarray:
        """Codes [n, 256] → uint8 images [n, 256, 256, 3], one image at a time so each is the
        same whatever else is decoded with it."""
        tokens = np.asarray(tokens, np.int32)
        if tokens.ndim != 2 or tokens.min(initial=0) < 0 or tokens.max(initial=0) >= self.code_count:
            raise ValueError(f"tokens must be [n, 256] codes in 0..{self.code_count - 1}")
        return np.concatenate([decode_to_uint8(self.vqgan_params, self.vqgan_config, row[None])
                               for row in tokens])

    def decode_partial(self, tokens, steps_done: int) -> np.ndarray:
        """Codes [n, 256] of which the first `steps_done` are drawn → uint8 images [n, 256, 256, 3]
        with the code rows not yet finished grey (minidalle/partial.py): a preview of tiles still
        forming. It uses the same compiled decode as decode_tokens."""
        images = self.decode_tokens(fill_undrawn(tokens, steps_done))
        return grey_unfinished_rows(images, steps_done, self.vqgan_config.code_grid_side)

    def generate(self, prompt, seed: int, n: int = 1,
                 temperature: float = SamplingParams.temperature,
                 top_k: int = SamplingParams.top_k,
                 top_p: float | None = SamplingParams.top_p,
                 condition_scale: float = SamplingParams.condition_scale,
                 on_progress: ProgressCallback | None = None) -> list[Image.Image]:
        """n images of one prompt, as PIL RGB images (tile i from seed and index i)."""
        tokens = self.generate_tokens(prompt, seed, n, temperature, top_k, top_p, condition_scale,
                                      on_progress)
        return [Image.fromarray(image, "RGB") for image in self.decode_tokens(tokens)]
