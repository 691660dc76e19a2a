"""Draw docs/screenshot.png (a finished job's page at a phone's size) and docs/phone.png (a job and its
starred rerun with an edited prompt, compared side by side), for the README.

The images in it are test images drawn below (coloured shapes), not model output: a test worker
posts them through the real worker API to a real server, and Chromium shows the real page.
Run `python docs/screenshot.py [out.png [phone.png]]` from the repository root (needs
/usr/bin/chromium).
"""

import io
import math
import sys
import tempfile
from pathlib import Path

import requests
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import ServerProcess  # noqa: E402  (needs the path above)
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, PHONE  # noqa: E402

TOKEN = "screenshot-token"
TILE_PIXELS = 256
PROMPT = "an armchair in the shape of an avocado, studio lighting"
GRID = 3
TIMEOUT_SECONDS = 10


def test_tile(index: int) -> Image.Image:
    """A colourful 256x256 test image: a gradient sky, a sun, and hills, different per index."""
    hue = index / (GRID * GRID)
    top = tuple(int(127 + 127 * math.cos(2 * math.pi * (hue + third / 3))) for third in range(3))
    bottom = tuple(int(channel * 0.35) for channel in top[::-1])
    image = Image.new("RGB", (TILE_PIXELS, TILE_PIXELS))
    draw = ImageDraw.Draw(image)
    for y in range(TILE_PIXELS):
        share = y / (TILE_PIXELS - 1)
        draw.line([(0, y), (TILE_PIXELS, y)], fill=tuple(
            int(a + (b - a) * share) for a, b in zip(top, bottom)))
    sun_x = 60 + (index * 53) % 140
    draw.ellipse((sun_x, 40, sun_x + 70, 110), fill=(255, 226, 140))
    for layer, shade in enumerate((0.55, 0.35)):
        base = 170 + layer * 35
        wave = 28 + 9 * index
        points = [(x, base + 22 * math.sin(x / wave + layer + index)) for x in range(0, 257, 8)]
        draw.polygon(points + [(TILE_PIXELS, TILE_PIXELS), (0, TILE_PIXELS)],
                     fill=tuple(int(c * shade) for c in (80, 190, 120)))
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def finished_job(url: str, submit_path: str = "/api/v1/jobs", body: dict | None = None,
                 tile_offset: int = 0) -> str:
    """Queue a job (PROMPT by default, or a rerun through `submit_path`) and finish it as a worker
    would, with the test tiles; returns its id."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = body if body is not None else {"prompt": PROMPT, "grid": GRID, "seed": 1234}
    job = requests.post(f"{url}{submit_path}", json=body, timeout=TIMEOUT_SECONDS).json()
    claimed = requests.post(f"{url}/api/v1/worker/claim", headers=headers, timeout=TIMEOUT_SECONDS,
                            json={"worker": "screenshot", "models": ["mini"]}).json()["jobs"][0]
    tiles = [test_tile(index + tile_offset) for index in range(GRID * GRID)]
    grid = Image.new("RGB", (TILE_PIXELS * GRID, TILE_PIXELS * GRID))
    for index, tile in enumerate(tiles):
        grid.paste(tile, ((index % GRID) * TILE_PIXELS, (index // GRID) * TILE_PIXELS))
    files = {"grid": ("grid.png", png(grid), "image/png")}
    for index, tile in enumerate(tiles):
        files[f"image_{index}"] = (f"tile_{index}.png", png(tile), "image/png")
    meta = '{"device": "NVIDIA RTX 3060 (test images)"}'
    response = requests.post(f"{url}/api/v1/worker/jobs/{job['id']}/result", headers=headers,
                             data={"lease": claimed["lease"], "meta": meta}, files=files,
                             timeout=TIMEOUT_SECONDS)
    response.raise_for_status()
    return job["id"]


def starred_family(url: str, parent_id: str) -> str:
    """Two reruns of the parent, one with an edited prompt; the edited one starred. Its id."""
    rerun = f"/api/v1/jobs/{parent_id}/rerun"
    finished_job(url, rerun, {"seed": "new"}, tile_offset=3)
    edited = finished_job(url, rerun, {"prompt": PROMPT + ", at dusk"}, tile_offset=5)
    requests.post(f"{url}/api/v1/jobs/{edited}/star", json={"starred": True},
                  timeout=TIMEOUT_SECONDS).raise_for_status()
    return edited


def main(out_path: Path, phone_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        server = ServerProcess(Path(folder), env={"DALLEQ_WORKER_TOKEN": TOKEN}).start()
        try:
            job_id = finished_job(server.url)
            rerun_id = starred_family(server.url, job_id)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(base_url=server.url, color_scheme="dark", **PHONE)
                page = context.new_page()
                page.goto(f"/jobs/{job_id}")
                page.wait_for_function(
                    "[...document.querySelectorAll('#job-result img')].every(i => i.complete)")
                page.screenshot(path=str(out_path))
                page.goto(f"/compare?ids={job_id},{rerun_id}")
                page.wait_for_function("[...document.images].every(i => i.complete)")
                page.screenshot(path=str(phone_path))
                browser.close()
        finally:
            server.stop()
    print(out_path, phone_path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshot.png",
         Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "docs" / "phone.png")
