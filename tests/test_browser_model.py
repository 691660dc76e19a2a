"""The phone watching a real model: live previews of the tiny model's grid forming, then its grid
ranked by the tiny CLIP, best first, in a real Chromium at phone size (issue 17, "Done when").

The worker is the real one, in-process, with the real tiny pipeline and CLIP. A warm tiny job ends
in well under the page's poll interval, so the pipeline is wrapped to hold after chosen previews
until the page has shown them: the test decides when the model goes on, never a timer.
"""

import threading

import pytest
import requests

from tests.conftest import WORKER_TOKEN
from tests.test_browser import (  # noqa: F401
    HTTP_TIMEOUT_SECONDS,
    WAIT_MS,
    api_submit,
    assert_not_reloaded,
    browser,
    expect,
    mark_page,
    phone,
    wake,
)

pytest.importorskip("jax")

pytestmark = pytest.mark.browser

PREVIEW_EVERY_STEPS = 16  # every chunk of the loop
HELD_AT_STEPS = (16, 96)  # a row drawn, then six: two previews that must differ
MODEL_WAIT_SECONDS = 180  # the first job compiles the tiny model


class HeldAtPreviews:
    """The real pipeline, held after the previews made at HELD_AT_STEPS until the test lets go."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.held = {steps: threading.Event() for steps in HELD_AT_STEPS}
        self.released = {steps: threading.Event() for steps in HELD_AT_STEPS}

    def generate_batch(self, requests, on_progress=None, on_codes=None):
        def post_then_hold(steps_done, codes):
            on_codes(steps_done, codes)  # the worker's own: decodes and posts the preview
            if steps_done in self.held:
                self.held[steps_done].set()
                assert self.released[steps_done].wait(MODEL_WAIT_SECONDS), "never released"
        return self.pipeline.generate_batch(requests, on_progress, on_codes=post_then_hold)

    def decode_tokens(self, tokens):
        return self.pipeline.decode_tokens(tokens)

    def decode_partial(self, codes, steps_done):
        return self.pipeline.decode_partial(codes, steps_done)

    def release_all(self):
        for event in self.released.values():
            event.set()


def preview_bytes(url: str, job_id: str) -> bytes:
    response = requests.get(f"{url}/files/{job_id}/preview", timeout=HTTP_TIMEOUT_SECONDS)
    assert response.status_code == 200, response.text
    return response.content


def test_the_phone_sees_the_real_grid_form_then_its_best_tile_first(
        phone, live_server, tiny_checkpoint, tiny_pipeline, tmp_path):  # noqa: F811
    from minidalle.ranking import ClipRanker
    from worker.previews import PreviewSetting
    from worker.runner import ModelInfo, Worker, WorkerOptions
    from worker.stopping import StopRequests

    job_id = api_submit(live_server.url, prompt="a lighthouse at dusk", grid=2, seed=3,
                        model="tiny")["id"]
    pipeline = HeldAtPreviews(tiny_pipeline)
    options = WorkerOptions(server_url=live_server.url, token=WORKER_TOKEN, name="in-process",
                            model_name="tiny", spool_dir=tmp_path / "spool",
                            claim_wait_seconds=1.0,
                            previews=PreviewSetting(PREVIEW_EVERY_STEPS))
    stop = StopRequests()
    worker = Worker(options, pipeline, ModelInfo("tiny", "fp32", "cpu", True), stop=stop,
                    ranker=ClipRanker.load(tiny_checkpoint / "clip"))
    phone.goto(f"/jobs/{job_id}")
    mark_page(phone)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        preview = phone.locator("#job-preview")
        shown = []
        for steps in HELD_AT_STEPS:
            assert pipeline.held[steps].wait(MODEL_WAIT_SECONDS), f"no preview at step {steps}"
            wake(phone)
            expect(preview).to_have_attribute("src", f"/files/{job_id}/preview?steps={steps}")
            expect(preview).to_have_js_property("complete", True)
            assert preview.evaluate("image => image.naturalWidth") > 0
            shown.append(preview_bytes(live_server.url, job_id))
            pipeline.released[steps].set()
        assert shown[0] != shown[1]  # two different pictures of the grid forming

        wake(phone)
        expect(phone.locator("#job-status .status")).to_have_text("Done", timeout=WAIT_MS * 6)
        job = requests.get(f"{live_server.url}/api/v1/jobs/{job_id}",
                           timeout=HTTP_TIMEOUT_SECONDS).json()
    finally:
        pipeline.release_all()
        stop.request("test over")
        thread.join(timeout=60)
    assert len(job["scores"]) == 4 and job["best_image"] is not None
    order = sorted(range(4), key=lambda index: -job["scores"][index])
    tiles = phone.locator("#job-result a.tile")
    expect(tiles).to_have_count(4)
    expect(tiles.first).to_have_class("tile best")
    shown_order = [int(tiles.nth(n).get_attribute("data-index")) for n in range(4)]
    assert shown_order[0] == job["best_image"] and shown_order == order
    expect(preview).to_have_count(0)
    assert_not_reloaded(phone)
