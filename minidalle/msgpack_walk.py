"""Walking a flax-msgpack file one array at a time, without copying it (issue 19).

flax's `serialization.msgpack_restore` copies every array out of the file before a loader sees
any, so casting Mega to bf16 needed its 10.4 GB of fp32 copies, the 5.2 GB cast and the file's
pages at once. Here each array is a numpy view on a memory map of the file, handed with its key
path to a `convert` function whose result (the final weight) is kept; then the file's pages read
so far leave the process's resident set (`MADV_DONTNEED`: they stay in the page cache). At any
moment only the final weights so far and one array's source pages are resident.

The format is flax's (flax/serialization.py): nested msgpack maps; each array an ext of type 1
whose payload is the msgpack array [shape, dtype name, raw bytes]; an array over 1 GiB split into
a `__msgpack_chunked_array__` map of flat chunks. Map and ext headers are read here as the
msgpack spec lays them out (github.com/msgpack/msgpack/blob/master/spec.md); keys, shapes and
dtype names through msgpack's own Unpacker.
"""

from __future__ import annotations

import math
import mmap
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import msgpack
import numpy as np

NDARRAY_EXT_TYPE = 1  # flax's _MsgpackExtType.ndarray
CHUNKED_MARKER = "__msgpack_chunked_array__"  # flax's key for an array split into chunks
SMALL_OBJECT_BYTES = 256  # first window for a key, a shape or a dtype name (doubled as needed)

# msgpack spec: first byte → (header bytes, bytes of the big-endian length/count field)
FIXMAP_FIRST, FIXMAP_LAST = 0x80, 0x8F
MAP_HEADERS = {0xDE: (3, 2), 0xDF: (5, 4)}
FIXEXT_DATA_BYTES = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
EXT_HEADERS = {0xC7: (3, 1), 0xC8: (4, 2), 0xC9: (6, 4)}  # ext 8/16/32 (type byte last)
BIN_HEADER_BYTES = (2, 3, 5)  # bin 8/16/32: the raw bytes' header inside an array's payload

# convert(key path, array view) → the value kept, or None to leave the key out
Convert = Callable[[tuple[str, ...], np.ndarray], Any]


def walk_arrays(path: Path, convert: Convert) -> dict:
    """The file's tree with each array replaced by `convert(key path, view)`, read in file order.

    The view is read-only and valid only during the call: convert must return a copy (a cast,
    a quantized kernel), never the view. Raises ValueError for a truncated or malformed file."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        walker = _Walker(mapped, str(path), convert)
        try:
            tree, end = walker.value(0, ())
        except BaseException as error:  # its frames hold views the mapping cannot close under
            traceback.clear_frames(error.__traceback__)
            raise
        if end != len(mapped):
            raise ValueError(f"{path}: {len(mapped) - end} bytes follow the parameter tree")
        if not isinstance(tree, dict):
            raise ValueError(f"{path} holds no parameter tree")  # noqa: TRY004 (a bad file)
        return tree


class _Walker:
    """One pass over a mapped file; `dropped_offset` is where the pages still resident begin."""

    def __init__(self, mapped: mmap.mmap, name: str, convert: Convert):
        self.mapped, self.name, self.convert = mapped, name, convert
        self.dropped_offset = 0

    def value(self, offset: int, keys: tuple[str, ...]) -> tuple[Any, int]:
        """(the value at offset, the offset after it)."""
        first = self.byte(offset)
        if FIXMAP_FIRST <= first <= FIXMAP_LAST or first in MAP_HEADERS:
            return self.map(offset, keys)
        if first in FIXEXT_DATA_BYTES or first in EXT_HEADERS:
            data_start, data_end = self.ext_data(offset)
            array = self.array(data_start, data_end)
            converted = self.convert(keys, array)
            del array  # the view must go before the mapping closes
            self.drop_pages_before(data_end)
            return converted, data_end
        return self.small_object(offset)

    def map(self, offset: int, keys: tuple[str, ...]) -> tuple[dict, int]:
        first = self.byte(offset)
        if FIXMAP_FIRST <= first <= FIXMAP_LAST:
            count, offset = first & 0x0F, offset + 1
        else:
            header_bytes, field_bytes = MAP_HEADERS[first]
            count, offset = self.big_endian(offset + 1, field_bytes), offset + header_bytes
        tree = {}
        for index in range(count):
            key, offset = self.small_object(offset)
            if index == 0 and key == CHUNKED_MARKER:
                return self.chunked(offset, count - 1, keys)
            value, offset = self.value(offset, (*keys, key))
            if value is not None:
                tree[key] = value
        return tree, offset

    def chunked(self, offset: int, entry_count: int, keys: tuple[str, ...]) -> tuple[Any, int]:
        """An array flax split into flat chunks (`_chunk`): the chunks copied, joined, then
        converted whole (a quantized kernel needs every row of a column at once)."""
        _, offset = self.small_object(offset)  # the marker's value, True
        parts = {}
        copy = _Walker(self.mapped, self.name, lambda _keys, view: np.array(view))
        for _ in range(entry_count):
            key, offset = copy.small_object(offset)
            parts[key], offset = copy.value(offset, (key,))
        shape = tuple(parts["shape"][str(i)] for i in range(len(parts["shape"])))
        chunks = [parts["chunks"][str(i)] for i in range(len(parts["chunks"]))]
        converted = self.convert(keys, np.concatenate(chunks).reshape(shape))
        self.drop_pages_before(offset)
        return converted, offset

    def ext_data(self, offset: int) -> tuple[int, int]:
        """(start, end) of an ext's payload, checked to be a flax array."""
        first = self.byte(offset)
        if first in FIXEXT_DATA_BYTES:
            header_bytes, data_bytes = 2, FIXEXT_DATA_BYTES[first]
        else:
            header_bytes, field_bytes = EXT_HEADERS[first]
            data_bytes = self.big_endian(offset + 1, field_bytes)
        ext_type = self.byte(offset + header_bytes - 1)
        if ext_type != NDARRAY_EXT_TYPE:
            raise ValueError(f"{self.name}: an msgpack ext of type {ext_type} at byte {offset} "
                             f"is not an array")
        start = offset + header_bytes
        self.need(start + data_bytes)
        return start, start + data_bytes

    def array(self, start: int, end: int) -> np.ndarray:
        """The [shape, dtype name, bytes] payload as a read-only view on the mapping."""
        unpacker = msgpack.Unpacker(raw=True)
        unpacker.feed(self.mapped[start:min(end, start + SMALL_OBJECT_BYTES)])
        try:
            if unpacker.read_array_header() != 3:
                raise ValueError("not [shape, dtype, bytes]")
            shape, dtype_name = tuple(unpacker.unpack()), unpacker.unpack()
            dtype = ml_dtypes.bfloat16 if dtype_name == b"bfloat16" else np.dtype(dtype_name)
        except (ValueError, TypeError, msgpack.UnpackException) as error:
            raise ValueError(f"{self.name}: the array at byte {start} is malformed ({error})")
        byte_count = math.prod(shape) * np.dtype(dtype).itemsize
        if end - byte_count - (start + unpacker.tell()) not in BIN_HEADER_BYTES:
            raise ValueError(f"{self.name}: the array at byte {start} does not hold "
                             f"{byte_count} bytes of {np.dtype(dtype).name} {list(shape)}")
        return np.frombuffer(self.mapped, dtype, math.prod(shape), end - byte_count).reshape(shape)

    def small_object(self, offset: int) -> tuple[Any, int]:
        """A key or a scalar through msgpack's Unpacker, fed a window that grows until it fits."""
        window = SMALL_OBJECT_BYTES
        while True:
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
            unpacker.feed(self.mapped[offset:offset + window])
            try:
                return unpacker.unpack(), offset + unpacker.tell()
            except msgpack.OutOfData:
                if offset + window >= len(self.mapped):
                    self.need(len(self.mapped) + 1)
                window *= 2

    def drop_pages_before(self, offset: int) -> None:
        """Take the file's pages before offset out of the resident set (they were read)."""
        end = offset - offset % mmap.PAGESIZE
        if end > self.dropped_offset and hasattr(mmap, "MADV_DONTNEED"):
            self.mapped.madvise(mmap.MADV_DONTNEED, self.dropped_offset,
                                end - self.dropped_offset)
            self.dropped_offset = end

    def byte(self, offset: int) -> int:
        self.need(offset + 1)
        return self.mapped[offset]

    def big_endian(self, offset: int, byte_count: int) -> int:
        self.need(offset + byte_count)
        return int.from_bytes(self.mapped[offset:offset + byte_count], "big")

    def need(self, end: int) -> None:
        if end > len(self.mapped):
            raise ValueError(f"{self.name} ends at byte {len(self.mapped)}, before its parameter "
                             f"tree does: is the file truncated?")
