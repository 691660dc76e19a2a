"""Tiles → one square grid image, and PNGs that carry how they were made.

A grid of n tiles is √n × √n, filled row by row in tile order (tile i at row i // side, column
i % side), so tile 0 is top-left whatever the grid size.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
from PIL import Image, PngImagePlugin


def grid_side(tile_count: int) -> int:
    """√tile_count; ValueError unless tile_count is a positive square."""
    side = math.isqrt(tile_count)
    if tile_count < 1 or side * side != tile_count:
        raise ValueError(f"a square grid needs a square number of tiles, got {tile_count}")
    return side


def make_grid(images) -> Image.Image:
    """PIL images or uint8 arrays [H,W,3] of one size → one RGB image of side·H × side·W."""
    tiles = [np.asarray(image, dtype=np.uint8) for image in images]
    side = grid_side(len(tiles))
    height, width = tiles[0].shape[:2]
    if any(tile.shape != tiles[0].shape for tile in tiles):
        raise ValueError("every tile of a grid must have the same size")
    rows = [np.concatenate(tiles[row * side:(row + 1) * side], axis=1) for row in range(side)]
    grid = np.concatenate(rows, axis=0)
    assert grid.shape[:2] == (side * height, side * width)
    return Image.fromarray(grid, "RGB")


SOFTWARE = "dalle-queue"


def image_text(prompt: str, seed: int, model: str, params: dict, dtype: str, **extra) -> dict:
    """The text every image we write carries (PNG iTXt): enough to find it again and redo it.

    `params` are the sampling knobs that were set (SamplingParams field names); `extra` adds
    fields such as the queue's `job_id`. The queue's server keeps all of these when it stores a
    result and adds only what it alone knows (the grid and tile index)."""
    return {"prompt": prompt, "seed": str(seed), "model": model, "params": params,
            "dtype": dtype, **{name: str(value) for name, value in extra.items()},
            "Software": SOFTWARE}


def png_bytes(image: Image.Image, metadata: dict | None = None) -> bytes:
    """Encode as PNG with each metadata item as an iTXt chunk (non-strings as JSON)."""
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        info.add_itxt(key, text)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()
