"""Host arrays on transparent huge pages, for the packed weights every decode step streams.

A decode step reads each packed weight once (`matmul`), so it runs at the speed the weights stream
in from memory. On 4 KiB pages that stream needs a new TLB entry every 64 cache lines, and the
CPU's stream prefetchers stop at every page boundary; on 2 MiB pages they do neither
(bench/README.md has the measured gain). Linux backs anonymous memory with huge pages only where a
mapping asks for them when transparent huge pages are in `madvise` mode (Ubuntu's default, and our
test machines'), so the packed weights live in one mapping that asks (`madvise(MADV_HUGEPAGE)`).

On the CPU backend `jax.device_put` of a host array aligned like these aliases it rather than
copying, so XLA reads the weights from these pages in place; a jax that copied instead would only
put them back on ordinary pages.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterable

import numpy as np

HUGE_PAGE_BYTES = 2 << 20
ARRAY_ALIGNMENT_BYTES = 4096  # each array starts on a page: XLA wants 64, the prefetchers pages


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ARRAY_ALIGNMENT_BYTES) * ARRAY_ALIGNMENT_BYTES


def array_bytes(shape: tuple[int, ...], dtype) -> int:
    return math.prod(shape) * np.dtype(dtype).itemsize


class HugePageArena:
    """One anonymous mapping, asked onto huge pages before anything touches it, handed out as
    page-aligned numpy arrays (`empty`). The arrays keep the mapping alive."""

    def __init__(self, nbytes: int):
        # private: THP backs private anonymous memory (shared is shmem, off by default); one
        # spare huge page, so the arrays can start on a huge-page boundary
        self._mapping = mmap.mmap(-1, max(1, nbytes) + HUGE_PAGE_BYTES, flags=mmap.MAP_PRIVATE)
        try:
            self._mapping.madvise(mmap.MADV_HUGEPAGE)
        except (AttributeError, OSError):  # not Linux, or a kernel without THP: ordinary pages
            pass
        self._bytes = np.frombuffer(self._mapping, np.uint8)
        self._next_offset = -self._bytes.ctypes.data % HUGE_PAGE_BYTES
        self._end_offset = self._next_offset + nbytes

    @classmethod
    def for_arrays(cls, specs: Iterable[tuple[tuple[int, ...], object]]) -> HugePageArena:
        """An arena just large enough for arrays of these (shape, dtype)s."""
        return cls(sum(_aligned(array_bytes(shape, dtype)) for shape, dtype in specs))

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array of the arena's next free bytes."""
        start = self._next_offset
        end = start + array_bytes(shape, dtype)
        if end > self._end_offset:
            raise ValueError(f"the arena has {max(0, self._end_offset - start)} bytes left, "
                             f"{end - start} asked")
        self._next_offset = _aligned(end)
        return self._bytes[start:end].view(dtype).reshape(shape)
