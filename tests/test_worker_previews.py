"""Live previews on the worker's side (issue 17, shared/API-1.1.md): how often, how small, and
that they neither change the images nor fail a job when the server will not take them.

The server's preview endpoint is built elsewhere, so the worker runs against a small recording
server on 127.0.0.1 that speaks the worker half of the API."""

import io
import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from flask import Flask, jsonify, request
from PIL import Image
from werkzeug.serving import make_server

from worker.client import QueueClient
from worker.previews import PreviewMaker, PreviewPacer, PreviewSetting, preview_webp

LEASE = "lease-1"
JOB = {"id": "job1", "prompt": "a fox in the snow", "seed": 11, "grid": 3, "model": "tiny",
       "params": {"temperature": 1.0, "top_k": 50, "top_p": None, "condition_scale": 10.0}}


@pytest.mark.parametrize("text, every_steps", [("off", 0), ("auto", None), ("AUTO", None),
                                               ("32", 32), (" 1 ", 1)])
def test_the_previews_setting_reads_off_auto_or_steps(text, every_steps):
    assert PreviewSetting.parse(text).every_steps == every_steps


@pytest.mark.parametrize("text", ["0", "-16", "often", "", "1.5"])
def test_a_bad_previews_setting_is_refused(text):
    with pytest.raises(ValueError, match="off, auto or a number of steps"):
        PreviewSetting.parse(text)


class Clock:
    def __init__(self):
        self.seconds = 0.0

    def __call__(self):
        return self.seconds


def test_auto_times_its_first_previews_then_spaces_them_to_a_tenth_of_the_sampling_time():
    clock = Clock()
    pacer = PreviewPacer(PreviewSetting.parse("auto"), share=0.1, now=clock)
    pacer.start_batch()
    for steps_done, preview_seconds in ((16, 9 * 2.0), (32, 9 * 0.4)):  # the first compiles
        clock.seconds += 16 * 0.5  # 16 steps at 0.5 s a step
        assert pacer.is_due(steps_done, 256, tile_count=9)  # made blind, and timed
        clock.seconds += preview_seconds
        pacer.made(steps_done, preview_seconds, tile_count=9)
    # the cheaper one counts: 3.6 s a preview, 10% of 0.5 s a step: one every 72 steps at most
    assert pacer.interval_steps(tile_count=9) == 72
    due_at = []
    for steps_done in range(48, 257, 16):
        clock.seconds += 16 * 0.5
        if pacer.is_due(steps_done, 256, tile_count=9):
            due_at.append(steps_done)
            clock.seconds += 3.6
            pacer.made(steps_done, 3.6, tile_count=9)
    assert due_at == [112, 192]  # and none at 256: the images themselves come next
    pacer.start_batch()  # the next batch knows the cost already: no blind preview
    clock.seconds += 16 * 0.5
    assert not pacer.is_due(16, 256, tile_count=9)


class TimedDecode:
    """A pipeline whose partial decode takes the given seconds on a Clock, one call after another."""

    def __init__(self, clock: Clock, seconds):
        self.clock = clock
        self.seconds = list(seconds)

    def decode_partial(self, codes, steps_done):
        self.clock.seconds += self.seconds.pop(0)
        return np.zeros((len(codes), 256, 256, 3), np.uint8)


def test_auto_times_a_preview_before_the_first_job_so_no_job_makes_one_blind():
    clock = Clock()
    decode = TimedDecode(clock, [2.0, 0.4])
    maker = PreviewMaker(PreviewSetting.parse("auto"), lambda: decode, client=lambda: None,
                         now=clock)
    maker.calibrate()  # the first decode compiles: the second, cheaper one counts
    assert maker.pacer.seconds_per_tile == pytest.approx(0.4, abs=0.05)
    maker.pacer.start_batch()
    clock.seconds += 16 * 0.5
    # 9 tiles at 0.4 s, 10% of 0.5 s a step: one every 72 steps, so none at the first point
    assert not maker.pacer.is_due(16, 256, tile_count=9)
    assert maker.pacer.interval_steps(tile_count=9) == 72


def test_calibrating_is_only_for_auto():
    clock = Clock()
    decode = TimedDecode(clock, [])
    maker = PreviewMaker(PreviewSetting.parse("16"), lambda: decode, client=lambda: None,
                         now=clock)
    maker.calibrate()  # no decode asked for: TimedDecode would run out of seconds
    assert maker.pacer.timed_count == 0


@pytest.mark.parametrize("setting, due_at", [("off", []), ("16", list(range(16, 256, 16))),
                                            ("40", [48, 96, 144, 192, 240])])
def test_a_fixed_interval_makes_a_preview_at_the_first_progress_point_past_each(setting, due_at):
    pacer = PreviewPacer(PreviewSetting.parse(setting), now=Clock())
    pacer.start_batch()
    made = []
    for steps_done in range(16, 257, 16):
        if pacer.is_due(steps_done, 256, tile_count=4):
            made.append(steps_done)
            pacer.made(steps_done, 0.0, tile_count=4)
    assert made == due_at


def test_a_3x3_preview_is_a_small_webp_even_of_noise():
    noise = np.random.default_rng(0).integers(0, 256, (9, 256, 256, 3), dtype=np.uint8)
    webp = preview_webp(noise)
    assert len(webp) <= 60_000
    image = Image.open(io.BytesIO(webp))
    assert image.format == "WEBP" and image.size == (288, 288)


# -- the worker against a recording server ---------------------------------------------------

class RecordingServer:
    """The worker endpoints, enough for one job: claims hand out JOB once, previews answer
    `preview_status` and are kept, results are kept. Runs on 127.0.0.1 in a thread."""

    def __init__(self, preview_status: int = 200):
        self.preview_status = preview_status
        self.previews: list[tuple[int, bytes]] = []  # (steps, image bytes)
        self.results: list[dict] = []  # the uploaded files by field name
        self.is_claimed = False
        app = Flask(__name__)
        app.add_url_rule("/api/v1/worker/claim", view_func=self.claim, methods=["POST"])
        app.add_url_rule("/api/v1/worker/jobs/<job_id>/heartbeat", view_func=self.heartbeat,
                         methods=["POST"])
        app.add_url_rule("/api/v1/worker/jobs/<job_id>/preview", view_func=self.preview,
                         methods=["POST"])
        app.add_url_rule("/api/v1/worker/jobs/<job_id>/result", view_func=self.result,
                         methods=["POST"])
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.server.shutdown()
        self.thread.join(timeout=10)

    @staticmethod
    def beat():
        expires = datetime.now(timezone.utc) + timedelta(minutes=5)
        return jsonify(lease_expires_at=expires.isoformat(), cancel_requested=False)

    def claim(self):
        if self.is_claimed:
            return "", 204
        self.is_claimed = True
        expires = datetime.now(timezone.utc) + timedelta(minutes=5)
        return jsonify(jobs=[{"job": JOB, "lease": LEASE,
                              "lease_expires_at": expires.isoformat()}])

    def heartbeat(self, job_id):
        return self.beat()

    def preview(self, job_id):
        assert request.form["lease"] == LEASE
        self.previews.append((int(request.form["steps"]), request.files["image"].read()))
        if self.preview_status != 200:
            return jsonify(error={"code": "nope", "message": "no"}), self.preview_status
        return self.beat()

    def result(self, job_id):
        self.results.append({name: file.read() for name, file in request.files.items()})
        return jsonify(dict(JOB, status="done"))


def run_one_job(tmp_path, pipeline, previews: str, preview_status: int = 200) -> RecordingServer:
    from worker.runner import ModelInfo, Worker, WorkerOptions

    with RecordingServer(preview_status) as server:
        options = WorkerOptions(server.url, "token", "w", "tiny", tmp_path / previews / "spool",
                                is_once=True, previews=PreviewSetting.parse(previews))
        worker = Worker(options, pipeline, ModelInfo("tiny", "fp32", "cpu", True))
        assert worker.run() == 0
    return server


def test_previews_show_the_grid_forming_and_never_change_the_images(tmp_path, tiny_pipeline):
    without = run_one_job(tmp_path, tiny_pipeline, "off")
    every_64 = run_one_job(tmp_path, tiny_pipeline, "64")
    assert without.previews == []
    assert [steps for steps, _ in every_64.previews] == [64, 128, 192]
    for _, webp in every_64.previews:
        assert len(webp) <= 60_000
        assert Image.open(io.BytesIO(webp)).format == "WEBP"
    assert len({webp for _, webp in every_64.previews}) == 3  # it forms: each one differs
    (plain,), (previewed,) = without.results, every_64.results
    assert previewed == plain  # grid and tiles, byte for byte


@pytest.mark.parametrize("status", [404, 409, 413, 500])
def test_a_preview_the_server_refuses_never_fails_the_job(tmp_path, tiny_pipeline, status, caplog):
    server = run_one_job(tmp_path, tiny_pipeline, "16", preview_status=status)
    assert len(server.previews) == 1  # tried once, then no more for this job
    (result,) = server.results
    assert set(result) == {"grid"} | {f"image_{index}" for index in range(9)}
    refusals = [r for r in caplog.records if "preview at step 16 not posted" in r.getMessage()]
    assert len(refusals) == 1


class PreviewsToNowhere(QueueClient):
    """The worker's client, except that previews go to a port where nothing listens."""

    def post_preview(self, *args):
        return QueueClient("http://127.0.0.1:9", "token", timeout_seconds=2).post_preview(*args)


def test_a_preview_to_an_unreachable_server_never_fails_the_job(tmp_path, tiny_pipeline):
    from worker.runner import ModelInfo, Worker, WorkerOptions

    with RecordingServer() as server:
        options = WorkerOptions(server.url, "token", "w", "tiny", tmp_path / "spool",
                                is_once=True, previews=PreviewSetting.parse("16"))
        worker = Worker(options, tiny_pipeline, ModelInfo("tiny", "fp32", "cpu", True),
                        make_client=lambda: PreviewsToNowhere(server.url, "token"))
        assert worker.run() == 0
    assert server.previews == []
    assert len(server.results) == 1


def test_the_worker_command_refuses_a_bad_previews_setting_before_loading_anything():
    from click.testing import CliRunner

    from dalleq.cli import main

    result = CliRunner().invoke(main, ["worker", "--server", "http://127.0.0.1:9", "--token", "t",
                                      "--previews", "sometimes"])
    assert result.exit_code == 2
    assert "off, auto or a number of steps" in result.output
