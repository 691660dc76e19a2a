"""Checking uploaded PNGs, stamping them with the job's metadata, and making gallery thumbnails.

An upload is accepted only when it is a PNG that decodes completely at exactly the size the job's
grid implies: the header is read before any pixels, so a decompression bomb is refused unread.
Metadata goes into iTXt chunks inserted before the image data, without re-encoding the pixels, so
every file a person downloads carries its prompt, seed, model and params (readable by any PNG tool).
The worker writes those itself (minidalle.grid.image_text, with its dtype); the server keeps its
text and adds only the grid or tile index, and the job's own facts where an upload lacks them.
"""

import io
import json
import struct
import warnings
import zlib

from PIL import Image

from . import defaults
from .errors import InvalidInput

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNK_TYPES = (b"tEXt", b"iTXt", b"zTXt")


def chunks(data: bytes):
    """Yield (type, whole chunk bytes) up to IEND; ValueError on a bad length, CRC or ending."""
    position = len(PNG_SIGNATURE)
    while True:
        if position + 12 > len(data):
            raise ValueError("the file ends before its IEND chunk")
        (length,) = struct.unpack(">I", data[position : position + 4])
        end = position + 12 + length
        if end > len(data):
            raise ValueError("a chunk runs past the end of the file")
        kind = data[position + 4 : position + 8]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[position + 4 : end - 4]) & 0xFFFFFFFF != crc:
            raise ValueError(f"the {kind!r} chunk fails its CRC check")
        yield kind, data[position:end]
        if kind == b"IEND":
            return  # bytes after IEND are not part of the image
        position = end


def check_png(data: bytes, name: str, expected_side_pixels: int) -> tuple[int, int]:
    """Raise InvalidInput unless `data` is a complete PNG of side x side pixels; returns its size."""
    if not data.startswith(PNG_SIGNATURE):
        raise InvalidInput(f"{name} is not a PNG file", code="invalid_image")
    try:
        for _ in chunks(data):
            pass
    except ValueError as exc:
        raise InvalidInput(f"{name} is not a valid PNG ({exc})", code="invalid_image") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                size = image.size
                if size != (expected_side_pixels, expected_side_pixels):
                    raise InvalidInput(
                        f"{name} is {size[0]}x{size[1]} pixels; expected "
                        f"{expected_side_pixels}x{expected_side_pixels}",
                        code="invalid_image_size",
                    )
                image.load()  # decodes every pixel: a truncated or corrupt file fails here
    except InvalidInput:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError,
            Image.DecompressionBombWarning, zlib.error) as exc:
        raise InvalidInput(f"{name} is not a valid PNG ({exc})", code="invalid_image") from None
    return size


PREVIEW_FORMATS = ["PNG", "JPEG", "WEBP"]


def check_preview(data: bytes, name: str) -> tuple[int, int]:
    """Raise InvalidInput unless `data` is a complete PNG, JPEG or WebP no larger than the largest
    grid; returns its size. As check_png: the header is read (and a bomb refused) before pixels."""
    side = defaults.PREVIEW_MAX_SIDE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PREVIEW_FORMATS) as image:
                size = image.size
                if max(size) > side:
                    raise InvalidInput(
                        f"{name} is {size[0]}x{size[1]} pixels; a preview is at most "
                        f"{side}x{side}",
                        code="invalid_image_size",
                    )
                image.load()
    except InvalidInput:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError,
            Image.DecompressionBombWarning, zlib.error) as exc:
        raise InvalidInput(
            f"{name} is not a valid PNG, JPEG or WebP image ({exc})", code="invalid_image"
        ) from None
    return size


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload) & 0xFFFFFFFF
    )


def _itxt(keyword: str, text: str) -> bytes:
    # keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translation NUL, text
    payload = keyword.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")
    return _chunk(b"iTXt", payload)


def text_keyword(chunk: bytes) -> str:
    """The keyword of a whole tEXt, zTXt or iTXt chunk (each payload starts `keyword NUL`)."""
    return chunk[8:].split(b"\0", 1)[0].decode("latin-1")


def with_metadata(data: bytes, metadata: dict[str, str], missing: dict[str, str] | None = None):
    """The same PNG with `metadata` as text chunks after IHDR, each replacing any text of the same
    keyword, plus the items of `missing` whose keyword it has no text for; other text is kept."""
    every_chunk = list(chunks(data))  # parsed once: each chunk's CRC is checked on the way
    carried = {text_keyword(chunk) for kind, chunk in every_chunk
               if kind in TEXT_CHUNK_TYPES} - set(metadata)
    added = metadata | {key: value for key, value in (missing or {}).items() if key not in carried}
    output = [PNG_SIGNATURE]
    for kind, chunk in every_chunk:
        if kind not in TEXT_CHUNK_TYPES or text_keyword(chunk) not in added:
            output.append(chunk)
        if kind == b"IHDR":
            output.extend(_itxt(key, value) for key, value in added.items())
    return b"".join(output)


def job_metadata(job: dict) -> dict[str, str]:
    """What a stored image says about its job when the worker's upload does not say it (a worker
    stamps its PNGs with these fields and more, such as its dtype, and they are kept)."""
    params = {name: job[name] for name in ("temperature", "top_k", "top_p", "condition_scale")}
    return {
        "prompt": job["prompt"],
        "seed": str(job["seed"]),
        "model": job["model"],
        "params": json.dumps(params),
        "job_id": job["id"],
        "Software": "dalle-queue",
    }


def thumbnail(png: bytes) -> tuple[bytes, tuple[int, int]]:
    """A small WebP of the grid or a tile (bytes, size) so the gallery loads fast on mobile data."""
    with Image.open(io.BytesIO(png)) as image:
        image = image.convert("RGB")
        image.thumbnail((defaults.THUMB_PIXELS, defaults.THUMB_PIXELS), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", quality=defaults.THUMB_QUALITY, method=4)
        return buffer.getvalue(), image.size
