"""The app icons (home screen, manifest, favicon), drawn with Pillow: a 3x3 grid of coloured tiles.

Run once with `python -m server.icons`; the PNGs it writes are committed in server/static/, so
nothing is drawn at request time. Kept as code so the icons can be redrawn at other sizes.
"""

import io
from pathlib import Path

from PIL import Image, ImageDraw

BACKGROUND = (17, 19, 24)
TILE_COLORS = [
    (109, 93, 252), (255, 107, 122), (255, 181, 71),
    (76, 212, 138), (139, 125, 255), (86, 182, 255),
    (255, 138, 76), (206, 120, 255), (255, 214, 102),
]
SIZES = {"icon-192.png": 192, "icon-512.png": 512, "apple-touch-icon.png": 180}
SAFE_ZONE = 0.62  # the tiles stay inside the middle of the icon, so masks that crop it keep them


def icon_png(side_pixels: int) -> bytes:
    """A square PNG icon of side_pixels, drawn at 4x and scaled down for smooth corners."""
    scale = 4
    side = side_pixels * scale
    image = Image.new("RGB", (side, side), BACKGROUND)
    draw = ImageDraw.Draw(image)
    grid_side = side * SAFE_ZONE
    gap = grid_side * 0.06
    tile = (grid_side - 2 * gap) / 3
    origin = (side - grid_side) / 2
    for index, color in enumerate(TILE_COLORS):
        row, column = divmod(index, 3)
        left = origin + column * (tile + gap)
        top = origin + row * (tile + gap)
        draw.rounded_rectangle(
            (left, top, left + tile, top + tile), radius=tile * 0.18, fill=color
        )
    image = image.resize((side_pixels, side_pixels), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_icons(folder: Path) -> list[Path]:
    written = []
    for name, side in SIZES.items():
        path = folder / name
        path.write_bytes(icon_png(side))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_icons(Path(__file__).resolve().parent / "static"):
        print(path)
