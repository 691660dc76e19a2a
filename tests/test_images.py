"""PNG checks and metadata stamping (server/images.py) on hand-made files."""

import io
import json

import pytest
from PIL import Image

from minidalle.grid import image_text
from minidalle.grid import png_bytes as stamped_png_bytes
from server.errors import InvalidInput
from server.images import check_png, with_metadata
from tests.helpers import TILE, png_bytes


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


def test_missing_text_is_filled_in_and_carried_text_kept():
    buffer = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("dtype", "bfloat16")
    info.add_text("prompt", "the worker's")
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    stamped = with_metadata(buffer.getvalue(), {"tile": "3"}, {"prompt": "ours", "seed": "7"})
    text = Image.open(io.BytesIO(stamped)).text
    assert text == {"dtype": "bfloat16", "prompt": "the worker's", "seed": "7", "tile": "3"}


def stored_texts(client, worker, files: dict) -> list[dict]:
    """Text of the stored grid and tiles after a grid-2 job's result is posted with `files`."""
    client.post("/api/v1/jobs", json={"prompt": "a red fox", "seed": 77, "grid": 2})
    job, lease = worker.claim_one()
    done = worker.post_result(job["id"], lease, 2, **files).json
    texts = []
    for url in [done["grid_url"], *done["image_urls"]]:
        with client.get(url) as response:
            texts.append(Image.open(io.BytesIO(response.data)).text)
    return texts


def test_a_worker_stamped_upload_keeps_every_field_the_worker_wrote(client, worker):
    params = {"top_k": 50, "temperature": 1.0, "condition_scale": 10.0}
    written = image_text("a red fox", 77, "mini", params, "bfloat16", job_id="as-the-worker-saw-it")

    def stamped(side):
        return stamped_png_bytes(Image.new("RGB", (side, side)), written)

    grid_text, *tile_texts = stored_texts(
        client, worker, {"grid_png": stamped(2 * TILE), "tiles": [stamped(TILE)] * 4}
    )
    expected = {key: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                for key, value in written.items()}  # fmt: skip
    assert grid_text == expected | {"grid": "2"}
    assert tile_texts == [expected | {"tile": str(index)} for index in range(4)]


def test_a_plain_upload_gets_the_jobs_own_fields(client, worker):
    grid_text, *tile_texts = stored_texts(client, worker, {})
    for text in (grid_text, *tile_texts):
        assert text["prompt"] == "a red fox" and text["seed"] == "77" and text["model"] == "mini"
        assert text["Software"] == "dalle-queue" and json.loads(text["params"])["top_k"] == 50
        assert text["job_id"] and "dtype" not in text
    assert grid_text["grid"] == "2"
    assert [text["tile"] for text in tile_texts] == ["0", "1", "2", "3"]
