"""`--rank/--no-rank`: which CLIP ranker a worker runs (issue 17, "CLIP ranking").

CLIP lives in the models cache like the generators, in the folder `clip` (`dalleq weights fetch
clip`). Unset, the worker ranks when those weights are there, so fetching them is all it takes;
the model is imported only when ranking is on (minidalle.ranking, JAX).
"""

from __future__ import annotations

from pathlib import Path

import click

from minidalle import weights as hub

CLIP_FOLDER = "clip"
CLIP_WEIGHT_FILES = ("config.json", "flax_model.msgpack")  # openai/clip-vit-base-patch32's


def clip_folder(cache: Path | None) -> Path:
    return hub.cache_root(cache) / CLIP_FOLDER


def has_clip_weights(cache: Path | None) -> bool:
    folder = clip_folder(cache)
    return all((folder / name).is_file() for name in CLIP_WEIGHT_FILES)


def should_rank(rank: bool | None, cache: Path | None) -> bool:
    """--rank/--no-rank as given; unset: whether the CLIP weights are in the cache."""
    return has_clip_weights(cache) if rank is None else rank


def load_ranker(rank: bool | None, cache: Path | None):
    """The CLIP ranker for --rank (None when not ranking), every failure told as one line."""
    if not should_rank(rank, cache):
        return None
    folder = clip_folder(cache)
    if not has_clip_weights(cache):
        raise click.ClickException(
            f"--rank needs the CLIP weights in {folder}: run `dalleq weights fetch clip`"
        )
    try:
        from minidalle.ranking import ClipRanker
    except ImportError as error:
        raise click.ClickException(f"this dalleq cannot rank with CLIP: {error}") from None
    try:
        # compilation_cache_dir None: $DALLEQ_JAX_CACHE or the default, as the pipeline's
        return ClipRanker.load(folder, compilation_cache_dir=None)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"could not load CLIP from {folder}: {error}") from None
