"""Owns the worker's loaded model, so it can be let go while idle or paused and loaded again.

A home GPU is also the one people play on: a worker that sits on its weights (Mega in bf16 is
5.2 GB) leaves a game starting beside it short of VRAM. `unload` deletes every device array the
model holds (jax.Array.delete frees the buffer at once, even if a stray reference remains), drops
the model and collects; `get` loads it again through the same loader the worker started with.

Reloading reads the checkpoint from disk again rather than keeping a copy in host memory: a host
copy would hold the same gigabytes of RAM the game wants too, and the operating system's page
cache already keeps recently read files in memory that is free otherwise, so a reload soon after
an unload is mostly a copy to the device. Each reload logs what it took.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def device_arrays(model) -> list:
    """The jax.Arrays among a model object's attributes (params, cached encodings, ...)."""
    import jax

    return [leaf for leaf in jax.tree_util.tree_leaves(vars(model))
            if isinstance(leaf, jax.Array)]


def delete_device_arrays(model) -> int:
    """Frees the device buffers of every array the model holds; returns how many it freed."""
    arrays = [array for array in device_arrays(model) if not array.is_deleted()]
    for array in arrays:
        array.delete()
    return len(arrays)


class ModelHolder:
    """The loaded model (a minidalle Pipeline, a CLIP ranker), loaded again after an unload."""

    def __init__(self, load: Callable[[], object] | None, model=None, *, what: str = "model",
                 clock: Callable[[], float] = time.perf_counter):
        """load: makes the model (None: a model given once, which is never unloaded);
        model: the one already loaded, if any."""
        self._load = load
        self._model = model
        self.what = what
        self.clock = clock
        self.load_count = 0 if model is None else 1
        self.last_load_seconds: float | None = None

    @classmethod
    def holding(cls, model, what: str = "model") -> ModelHolder:
        """A holder of a model made elsewhere (tests, scripts): kept loaded for good."""
        return cls(None, model, what=what)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def can_unload(self) -> bool:
        return self._load is not None

    def get(self):
        """The model, loaded first when it was unloaded (the loader's errors pass through)."""
        if self._model is None:
            if self._load is None:
                raise RuntimeError(f"the {self.what} was unloaded and has no loader")
            started = self.clock()
            self._model = self._load()
            self.load_count += 1
            self.last_load_seconds = self.clock() - started
            log.info("%s loaded again in %.1f s", self.what, self.last_load_seconds)
        return self._model

    def unload(self, why: str) -> bool:
        """Frees the model's device memory; True when there was something to free."""
        if self._model is None or self._load is None:
            return False
        freed_count = delete_device_arrays(self._model)
        self._model = None
        gc.collect()
        log.info("%s unloaded (%s): %d device arrays freed; the next job loads it again",
                 self.what, why, freed_count)
        return True
