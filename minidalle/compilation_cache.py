"""JAX's persistent compilation cache, so a restarted worker reuses compiled programs.

Turned on by `Pipeline.load`, never at import (STYLE 7). The folder defaults to
`$DALLEQ_JAX_CACHE`, else `$XDG_CACHE_HOME/dalle-queue/jax` (`~/.cache/...`).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax


def default_folder() -> Path:
    if os.environ.get("DALLEQ_JAX_CACHE"):
        return Path(os.environ["DALLEQ_JAX_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dalle-queue" / "jax"


def enable(folder: Path | None = None) -> Path:
    """Point JAX's persistent cache at folder (created if needed) and cache every program."""
    folder = Path(folder) if folder is not None else default_folder()
    folder.mkdir(parents=True, exist_ok=True)
    if jax.config.jax_compilation_cache_dir not in (None, str(folder)):
        # JAX opens its cache once per process; a second pipeline with another folder must
        # make it reopen there, or its programs would go to the first one's folder.
        from jax._src import compilation_cache as jax_cache

        jax_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
