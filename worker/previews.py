"""Live previews: when the worker decodes the codes drawn so far, and the small WebP it posts.

Issue 17 and shared/API-1.1.md (`POST /api/v1/worker/jobs/<id>/preview`). A preview is a
decode of the half-drawn grid (minidalle/partial.py), so on a 2-core CPU at the real shape it
costs seconds, and on a GPU almost nothing: `auto` times the previews it makes and spaces them so
they take at most PREVIEW_SHARE_OF_JOB of the sampling time, `N` makes one every N steps (at the
first progress point past each N: the loop reports every 16 steps), `off` none. A preview only
reads a copy of the codes, so it never changes the images, and one that fails to post is logged
and skipped: it never fails a job.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import time
from collections.abc import Callable

from . import defaults

log = logging.getLogger(__name__)

OFF, AUTO = "off", "auto"


@dataclasses.dataclass(frozen=True)
class PreviewSetting:
    """`--previews`: every_steps > 0 is a fixed interval, 0 is off, None is auto."""

    every_steps: int | None

    @classmethod
    def parse(cls, text: str) -> PreviewSetting:
        """off, auto or a positive number of steps; ValueError otherwise."""
        text = str(text).strip().lower()
        if text == OFF:
            return cls(0)
        if text == AUTO:
            return cls(None)
        if text.isdigit() and int(text) > 0:
            return cls(int(text))
        raise ValueError(f"previews must be off, auto or a number of steps > 0, got {text!r}")

    @property
    def is_off(self) -> bool:
        return self.every_steps == 0

    @property
    def is_auto(self) -> bool:
        return self.every_steps is None

    def __str__(self) -> str:
        return OFF if self.is_off else AUTO if self.is_auto else str(self.every_steps)


PREVIEWS_OFF = PreviewSetting(0)
BLIND_PREVIEW_COUNT = 2  # auto: previews made before their cost is trusted


class PreviewPacer:
    """Says, at each progress point of a batch, whether a preview is due.

    What a preview costs is kept per tile across batches. The worker measures it before its first
    job (PreviewMaker.calibrate); without that, its first BLIND_PREVIEW_COUNT previews are made
    blind and timed, as the first may include compiling the decode. The cheapest counts
    (compiling or a busy moment only ever adds time). The seconds per step are those of the
    latest chunk, previews excluded."""

    def __init__(self, setting: PreviewSetting, share: float = defaults.PREVIEW_SHARE_OF_JOB,
                 now: Callable[[], float] = time.perf_counter):
        self.setting = setting
        self.share = share
        self.now = now
        self.seconds_per_tile: float | None = None
        self.timed_count = 0  # previews made and timed so far
        self.seconds_per_step: float | None = None
        self.last_preview_steps = 0
        self.last_point = (now(), 0)  # (time, steps done) at the end of the last progress point

    def start_batch(self) -> None:
        self.last_preview_steps = 0
        self.last_point = (self.now(), 0)

    def is_due(self, steps_done: int, steps_total: int, tile_count: int) -> bool:
        """Also measures the chunk that just ran. None is due at the end: the images follow."""
        point_time, point_steps = self.last_point
        now = self.now()
        if steps_done > point_steps:
            self.seconds_per_step = (now - point_time) / (steps_done - point_steps)
        self.last_point = (now, steps_done)
        if self.setting.is_off or steps_done >= steps_total:
            return False
        return steps_done - self.last_preview_steps >= self.interval_steps(tile_count)

    def interval_steps(self, tile_count: int) -> int:
        """Steps between previews: the fixed N, or for auto the fewest that keep the share."""
        if not self.setting.is_auto:
            return self.setting.every_steps
        if self.timed_count < BLIND_PREVIEW_COUNT or not self.seconds_per_step:
            return 1  # not measured yet: make one, and time it
        preview_seconds = self.seconds_per_tile * tile_count
        return max(1, math.ceil(preview_seconds / (self.share * self.seconds_per_step)))

    def made(self, steps_done: int, seconds: float, tile_count: int) -> None:
        """Records a preview made at steps_done that took `seconds` for tile_count tiles."""
        self.last_preview_steps = steps_done
        self.timed(seconds, tile_count)
        self.last_point = (self.now(), steps_done)  # the next chunk is timed from here

    def timed(self, seconds: float, tile_count: int) -> None:
        """Records what a preview of tile_count tiles took, made in a job or to calibrate."""
        seconds_per_tile = seconds / max(1, tile_count)
        self.seconds_per_tile = min(seconds_per_tile, self.seconds_per_tile or seconds_per_tile)
        self.timed_count += 1


def preview_webp(images, tile_pixels: int = defaults.PREVIEW_TILE_PIXELS,
                 max_bytes: int = defaults.PREVIEW_MAX_BYTES,
                 qualities=defaults.PREVIEW_WEBP_QUALITIES) -> bytes:
    """uint8 tiles [n, H, W, 3] (n square) → one WebP grid of tile_pixels-sided tiles.

    Each quality in turn until the file fits in max_bytes (the last one's file otherwise)."""
    from PIL import Image

    from minidalle.grid import make_grid

    tiles = [Image.fromarray(tile, "RGB").resize((tile_pixels, tile_pixels), Image.BILINEAR)
             for tile in images]
    grid = make_grid(tiles)
    for quality in qualities:
        buffer = io.BytesIO()
        grid.save(buffer, format="WEBP", quality=quality)
        if buffer.tell() <= max_bytes:
            break
    return buffer.getvalue()


class PreviewMaker:
    """Makes the previews of a worker's batches and posts them through its client.

    A preview that cannot be made or posted (a 404 from a server without previews, a lost
    lease, an outage) is logged once and ends that job's previews for the batch; the job goes on."""

    def __init__(self, setting: PreviewSetting, pipeline: Callable[[], object],
                 client: Callable[[], object], now: Callable[[], float] = time.perf_counter):
        """pipeline: returns the loaded pipeline (worker/model_holder.py's get: the model may
        have been unloaded and loaded again since)."""
        self.pacer = PreviewPacer(setting, now=now)
        self.pipeline = pipeline
        self.client = client  # returns the QueueClient to post with (the generating thread's)
        self.now = now

    def calibrate(self) -> None:
        """auto: time a one-tile preview before the first job, so that no job pays for previews
        made blind to learn their cost (on a 2-core CPU at the real shape, 20-40 s). It is made
        BLIND_PREVIEW_COUNT times, as the first compiles the decode (which the first job's
        images would compile anyway)."""
        if not self.pacer.setting.is_auto:
            return
        import numpy as np

        blank = np.zeros((1, defaults.PREVIEW_CODES_PER_TILE), np.int32)
        try:
            for _ in range(BLIND_PREVIEW_COUNT):
                started = self.now()
                preview_webp(self.pipeline().decode_partial(blank, 0))
                self.pacer.timed(self.now() - started, tile_count=1)
        except Exception as error:  # noqa: BLE001 - the jobs then time their first previews
            log.warning("could not time a preview before the first job (%s: %s)",
                        type(error).__name__, error)
            return
        log.info("a preview costs %.3f s a tile here", self.pacer.seconds_per_tile)

    def callback(self, claims, is_wanted: Callable[[object], bool]):
        """The on_codes for Pipeline.generate_batch of these claims, or None when previews are
        off. is_wanted(claim) is False for a job canceled or lost meanwhile."""
        if self.pacer.setting.is_off:
            return None
        self.pacer.start_batch()
        given_up: set[str] = set()

        def on_codes(steps_done: int, codes_per_job) -> None:
            tile_count = sum(len(job_codes) for job_codes in codes_per_job)
            steps_total = codes_per_job[0].shape[1]
            if not self.pacer.is_due(steps_done, steps_total, tile_count):
                return
            started = self.now()
            previewed_tile_count = 0
            for claim, job_codes in zip(claims, codes_per_job):
                if claim.job_id not in given_up and is_wanted(claim):
                    self.make_and_post(claim, steps_done, job_codes, given_up)
                    previewed_tile_count += len(job_codes)
            if previewed_tile_count:
                self.pacer.made(steps_done, self.now() - started, previewed_tile_count)

        return on_codes

    def make_and_post(self, claim, steps_done: int, job_codes, given_up: set[str]) -> None:
        try:
            webp = preview_webp(self.pipeline().decode_partial(job_codes, steps_done))
            self.client().post_preview(claim.job_id, claim.lease, steps_done, webp)
        except Exception as error:  # noqa: BLE001 - a preview must never fail its job
            log.warning("job %s: preview at step %d not posted, no more for this job (%s: %s)",
                        claim.job_id, steps_done, type(error).__name__, error)
            given_up.add(claim.job_id)
        else:
            log.debug("job %s: preview at step %d posted (%d bytes)", claim.job_id, steps_done,
                      len(webp))
