"""Decoding a grid still being drawn: the codes so far, the code rows not yet finished greyed out.

Live previews (issue 17, as min-dalle yields its grid while sampling) show a tile as it forms.
The VQGAN decodes a whole 16x16 code grid at once (its convolutions and its attention reach across
rows, §6.3), so a half-drawn grid cannot be decoded row by row: the codes not yet drawn are filled
with one fixed code, the whole grid is decoded, and then the pixel rows of every code row not yet
finished are painted grey, so what shows is only the part already drawn. Codes are drawn row-major
(code i at row i // side), so the finished rows are the top ones.
"""

from __future__ import annotations

import numpy as np

UNDRAWN_CODE = 0  # any valid code: its pixels are painted over
UNDRAWN_GREY = 128  # uint8 value of the unfinished rows: a flat mid-grey reads as "not yet"


def fill_undrawn(codes, steps_done: int, filler_code: int = UNDRAWN_CODE) -> np.ndarray:
    """Codes [n, S] with every column from `steps_done` on set to `filler_code` (a copy)."""
    filled = np.array(codes, np.int32)
    filled[:, steps_done:] = filler_code
    return filled


def grey_unfinished_rows(images, steps_done: int, code_grid_side: int,
                         grey: int = UNDRAWN_GREY) -> np.ndarray:
    """uint8 images [n, H, W, 3] with the pixels of unfinished code rows set to `grey` (a copy).

    A code row is finished once all `code_grid_side` of its codes are drawn; a partly drawn row
    counts as unfinished."""
    greyed = np.array(images, np.uint8)
    pixels_per_code_row = greyed.shape[1] // code_grid_side
    finished_rows = min(steps_done // code_grid_side, code_grid_side)
    greyed[:, finished_rows * pixels_per_code_row:] = grey
    return greyed
