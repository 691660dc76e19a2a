"""PNG checks and metadata stamping (server/images.py) on hand-made files."""

import io

import pytest
from PIL import Image

from server.errors import InvalidInput
from server.images import check_png, with_metadata
from tests.helpers import png_bytes


def test_metadata_is_added_without_touching_the_pixels():
    original = png_bytes(16, (1, 2, 3))
    stamped = with_metadata(original, {"prompt": "a café at night ☕", "seed": "7"})
    image = Image.open(io.BytesIO(stamped))
    assert image.text == {"prompt": "a café at night ☕", "seed": "7"}
    assert image.tobytes() == Image.open(io.BytesIO(original)).tobytes()
    check_png(stamped, "stamped", 16)


def test_old_text_chunks_are_replaced_and_trailing_bytes_dropped():
    buffer = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", "forged")
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    stamped = with_metadata(buffer.getvalue() + b"junk after IEND", {"prompt": "real"})
    assert Image.open(io.BytesIO(stamped)).text == {"prompt": "real"}
    assert stamped.endswith(b"IEND\xaeB`\x82")


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", png_bytes(8)[:-20], b"BM" + b"0" * 100])
def test_broken_files_are_refused(data):
    with pytest.raises(InvalidInput):
        check_png(data, "tile", 8)


def test_wrong_size_is_refused_with_both_sizes_named():
    with pytest.raises(InvalidInput, match="8x8 pixels; expected 16x16"):
        check_png(png_bytes(8), "tile", 16)
