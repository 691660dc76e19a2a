"""Scoring a grid's tiles against its prompt with CLIP, best first, as DALL-E Mini does.

DALL-E Mini's inference notebook ranks its samples with CLIP ViT-B/32: each image's score is
`logit_scale.exp()` times the cosine similarity of its embedding and the prompt's. The images go
through CLIP's own preprocessing (transformers' CLIPImageProcessor for this checkpoint: bicubic
resize of the shortest side, center crop, CLIP's mean and std), the prompt through the
checkpoint's tokenizer files read by transformers' CLIPTokenizerFast. The worker calls
`ClipRanker.scores`; what it does with the numbers is its business.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from . import compilation_cache
from .clip import Clip, ClipConfig
from .clip_checkpoint import load_params

# CLIP's normalisation constants (openai/CLIP clip/clip.py `_transform`, preprocessor_config.json).
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def preprocess(image: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 -> size x size x 3 float32: shortest side to size (bicubic), center crop,
    [0, 1], then CLIP's normalisation."""
    height, width = image.shape[:2]
    short, long = min(height, width), max(height, width)
    new_long = int(size * long / short)  # CLIPImageProcessor truncates, so do we
    new_size = (size, new_long) if width <= height else (new_long, size)  # PIL takes (w, h)
    resized = np.asarray(Image.fromarray(image).resize(new_size, Image.Resampling.BICUBIC))
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    cropped = resized[top:top + size, left:left + size].astype(np.float32) / np.float32(255)
    return (cropped - CLIP_MEAN) / CLIP_STD


class ClipRanker:
    """A loaded CLIP: `scores(prompt, images)` gives one float per image, higher is better."""

    def __init__(self, config: ClipConfig, params: dict, tokenizer, folder: Path):
        self.config = config
        self.params = jax.device_put(params)
        self.tokenizer = tokenizer
        self.folder = folder
        model = Clip(config)
        # One program per batch size (jit caches by shape); the text is padded to a fixed length.
        self._scores = jax.jit(lambda params, ids, pixels: model.apply(
            {"params": params}, ids, pixels)[:, 0])
        self.load_seconds = 0.0

    @classmethod
    def load(cls, folder: Path, compilation_cache_dir: Path | None | bool = None) -> ClipRanker:
        """Read `folder` (config.json, flax_model.msgpack, tokenizer files).
        compilation_cache_dir: as Pipeline.load's (None: the default folder; False: off)."""
        from transformers import CLIPTokenizerFast

        started = time.perf_counter()
        if compilation_cache_dir is not False:
            compilation_cache.enable(compilation_cache_dir)
        folder = Path(folder)
        config = ClipConfig.from_folder(folder)
        params = load_params(folder, config)
        tokenizer = CLIPTokenizerFast.from_pretrained(str(folder))
        ranker = cls(config, params, tokenizer, folder)
        ranker.load_seconds = time.perf_counter() - started
        return ranker

    def token_ids(self, prompt: str) -> np.ndarray:
        """[1, max_position_embeddings] int32, padded with the end-of-text token."""
        length = self.config.text.max_position_embeddings
        encoded = self.tokenizer(prompt, padding="max_length", max_length=length,
                                 truncation=True)
        return np.asarray(encoded["input_ids"], np.int32)[None]

    def pixels(self, images: Sequence[np.ndarray]) -> np.ndarray:
        size = self.config.vision.image_size
        return np.stack([preprocess(np.asarray(image, np.uint8), size) for image in images])

    def scores(self, prompt: str, images: Sequence[np.ndarray]) -> list[float]:
        """One score per image (HxWx3 uint8), in input order: logit_scale.exp() x cosine."""
        if len(images) == 0:
            return []
        scores = self._scores(self.params, jnp.asarray(self.token_ids(prompt)),
                              jnp.asarray(self.pixels(images)))
        return [float(score) for score in np.asarray(scores)]
