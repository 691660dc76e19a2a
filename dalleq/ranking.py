"""`--rank/--no-rank`: which CLIP ranker a worker runs (issue 17, "CLIP ranking").

A worker ranks with its model folder's own CLIP when it has one (the demo and `weights tiny`
write a tiny one beside the model), else with the fetched one in the models cache (`dalleq
weights fetch clip`), the way minidalle.weights.clip_folder finds them. Unset, it ranks when
either is there, so fetching is all it takes; the model is imported only when ranking is on
(minidalle.ranking, JAX).
"""

from __future__ import annotations

from pathlib import Path

import click

from minidalle import weights as hub


def load_ranker(rank: bool | None, model_dir: Path | None, cache: Path | None):
    """The CLIP ranker for --rank (None when not ranking), every failure told as one line."""
    if rank is False:
        return None
    folder = hub.clip_folder(model_dir, cache)
    if folder is None:
        if rank is None:
            return None
        fetched = hub.model_folder(hub.CLIP_NAME, cache)
        raise click.ClickException(
            f"--rank needs the CLIP weights in {fetched}: run `dalleq weights fetch clip`"
        )
    try:
        from minidalle.ranking import ClipRanker
    except ImportError as error:
        raise click.ClickException(f"this dalleq cannot rank with CLIP: {error}") from None
    try:
        # compilation_cache_dir None: $DALLEQ_JAX_CACHE or the default, as the pipeline's
        ranker = ClipRanker.load(folder, compilation_cache_dir=None)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"could not load CLIP from {folder}: {error}") from None
    return folder, ranker
