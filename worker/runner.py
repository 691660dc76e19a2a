"""The worker loop: claim, generate, heartbeat, post (STYLE 26), for weeks, unattended.

What can go wrong, and what happens then:
- the server is down or the network drops: every call is retried with jittered backoff; a
  finished result waits in the spool (worker/spool.py) and is posted when the server is back;
- the model raises on a batch of several jobs: the batch is split in halves and retried, so one
  bad job fails alone with its message while the others finish; out-of-memory (or a full disk)
  fails retryable (another worker, or a smaller batch, may manage), anything else does not;
- a job is canceled or its lease lost: it is dropped, and when every job of the batch is, the
  generation stops at its next progress chunk;
- the process is killed: its leases expire on the server and the jobs run again elsewhere;
- a live preview cannot be made or posted (worker/previews.py): logged once, the job goes on;
- it is asked to stop while the server is unreachable: it retries for STOP_RETRY_SECONDS, then
  exits, its undelivered results left in the spool for the next start.
Sharing the GPU (issue 19): after `idle_unload_seconds` without work the model's device memory is
freed (worker/model_holder.py) and the next batch loads it again; while worker/availability.py
says to hold (quiet hours, a game running), the batch in hand finishes, then no claim is sent,
the model is unloaded, and the worker looks again every `hold_check_seconds`. Its state goes to
the server's queue page (worker/status.py).
Each tile depends only on its job (minidalle's contract), so batching never changes an image.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import defaults, jobs
from .availability import Availability
from .backoff import Backoff
from .client import Claim, QueueClient
from .errors import (
    Abandoned,
    BatchStopped,
    JobGone,
    LeaseLost,
    Rejected,
    ServerUnavailable,
    Unauthorized,
)
from .heartbeats import Heartbeats
from .model_holder import ModelHolder
from .previews import PREVIEWS_OFF, PreviewMaker, PreviewSetting
from .ranking import Ranker, ranking_meta
from .spool import Spool, SpooledResult
from .status import IDLE, PAUSED, WORKING, StatusReporter
from .stopping import StopRequests

log = logging.getLogger(__name__)

STOP_CHECK_SECONDS = 0.05  # how often an idle worker looks for a stop request


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    server_url: str
    token: str
    name: str
    model_name: str  # what the worker advertises in claims: jobs name it in `model`
    spool_dir: Path
    max_batch: int = defaults.MAX_BATCH
    claim_wait_seconds: float = defaults.CLAIM_WAIT_SECONDS
    batch_window_seconds: float = defaults.BATCH_WINDOW_SECONDS
    is_once: bool = False
    stop_retry_seconds: float = defaults.STOP_RETRY_SECONDS  # see defaults.STOP_RETRY_SECONDS
    previews: PreviewSetting = PREVIEWS_OFF  # `dalleq worker` defaults to defaults.PREVIEWS
    idle_unload_seconds: float = 0.0  # free the model after this long without work; 0: never
    hold_check_seconds: float = defaults.HOLD_CHECK_SECONDS  # while paused, look again this often


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the result meta and the PNG text say about the model that made the images."""

    label: str
    dtype: str
    device: str
    is_random_weights: bool


def is_out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, MemoryError) or "resource_exhausted" in text or "out of memory" in text


def failure_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:defaults.ERROR_MAX_CHARS]


def held(model, what: str) -> ModelHolder:
    return model if isinstance(model, ModelHolder) else ModelHolder.holding(model, what)


class Worker:
    def __init__(self, options: WorkerOptions, pipeline: ModelHolder | object, model: ModelInfo,
                 *, stop: StopRequests | None = None,
                 make_client: Callable[[], QueueClient] | None = None,
                 ranker: ModelHolder | Ranker | None = None,
                 availability: Availability | None = None,
                 clock: Callable[[], float] = time.monotonic):
        """pipeline: a ModelHolder (unloaded when idle or paused) or a pipeline kept loaded;
        ranker: scores each job's tiles against its prompt (worker/ranking.py), held the same
        way; None: no scores in the results. availability: when to hold (None: never).
        clock: seconds, for the idle time and the state reports."""
        from minidalle.grid import make_grid, png_bytes
        from minidalle.pipeline import GenerationRequest, SamplingParams

        self._make_grid, self._png_bytes = make_grid, png_bytes
        self._request_type, self._params_type = GenerationRequest, SamplingParams
        self.options = options
        self.models = held(pipeline, "model")
        self.rankers = None if ranker is None else held(ranker, "CLIP ranker")
        self.model = model
        self.availability = availability or Availability()
        self.clock = clock
        self.last_work_at = clock()
        self.paused_reason: str | None = None
        self.stop = stop or StopRequests()
        self.make_client = make_client or (lambda: QueueClient(options.server_url, options.token))
        self.client = self.make_client()
        self.heartbeats = Heartbeats(self.make_client)
        self.spool = Spool(options.spool_dir)
        self.backoff = Backoff()
        self.previews = PreviewMaker(options.previews, self.models.get, lambda: self.client)
        self.status = StatusReporter(lambda: self.client, options.name, [options.model_name],
                                     clock=clock)
        self.held: dict[str, Claim] = {}
        self.stop_retry_deadline: float | None = None  # time.monotonic(), set at the first
        # outage after a stop: every call shares the one budget

    @property
    def pipeline(self):
        return self.models.get()

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        """Serves the queue until stopped; returns the process exit status."""
        self.heartbeats.start()
        self.previews.calibrate()
        log.info("worker %s ready: model %s (%s, %s) on %s, batches of up to %d, previews %s, "
                 "%s%s", self.options.name, self.options.model_name, self.model.label,
                 self.model.dtype, self.model.device, self.options.max_batch,
                 self.options.previews, self.availability, self.idle_unload_text())
        try:
            while not self.stop.is_requested:
                self.spool.prune_orphans(defaults.ORPHAN_KEEP_SECONDS)
                reason = self.availability.hold_reason()
                if reason is not None:
                    self.hold(reason)
                    if self.options.is_once:
                        break
                    continue
                self.resume_if_paused()
                self.unload_if_idle()
                self.status.report(IDLE)
                try:
                    self.deliver_pending()
                    claims = self.claim_batch()
                    self.backoff.reset()
                except ServerUnavailable as error:
                    if self.options.is_once:  # a script wants an answer, not a wait
                        log.error("server unavailable: %s", error)
                        return 1
                    wait_seconds = self.backoff.next_seconds()
                    log.warning("server unavailable, retrying in %.1f s: %s", wait_seconds, error)
                    self.stop.sleep(wait_seconds)
                    continue
                if claims:
                    self.run_batch(claims)
                if self.options.is_once:
                    break
            return 0
        except Abandoned:
            self.hand_back_leases()
            return 0
        except Unauthorized as error:
            log.error("the server refused this worker's token: %s", error)
            return 2
        except (Rejected, JobGone) as error:
            log.error("the server refused a claim (is --server a dalle-queue server?): %s", error)
            return 2
        finally:
            self.heartbeats.stop()
            self.client.close()
            log.info("worker %s stopped", self.options.name)

    def claim_batch(self) -> list[Claim]:
        """One long poll; after a partial batch, a short window lets a burst of jobs join it."""
        models = [self.options.model_name]
        wait_seconds = 0.0 if self.options.is_once else self.options.claim_wait_seconds
        if self.stop.is_requested:
            return []
        started = time.monotonic()
        claims = self.long_poll(lambda: self.client.claim(
            self.options.name, models, self.options.max_batch, wait_seconds))
        is_unheld = not claims and time.monotonic() - started < wait_seconds / 2
        if is_unheld and not self.stop.is_requested:  # a stop cuts a poll short too
            # An empty answer long before `wait`: the server's long polls are all taken (it keeps
            # threads free for people) and it did not hold this one. Pause before asking again.
            self.stop.sleep(defaults.UNHELD_POLL_PAUSE_SECONDS)
        room = self.options.max_batch - len(claims)
        if (claims and room > 0 and self.options.batch_window_seconds > 0
                and not self.stop.is_requested):
            time.sleep(self.options.batch_window_seconds)
            try:
                claims += self.client.claim(self.options.name, models, room, 0.0)
            except ServerUnavailable as error:
                log.warning("could not fill the batch, going on with %d: %s", len(claims), error)
        for claim in claims:
            self.held[claim.job_id] = claim
            self.heartbeats.hold(claim)
        return claims

    # -- sharing the GPU ----------------------------------------------------------------------
    def hold(self, reason: str) -> None:
        """One turn of a pause: no claim, the model unloaded, the state told, a wait."""
        if reason != self.paused_reason:
            log.warning("pausing: %s (no new jobs until it ends; looking again every %.0f s)",
                        reason, self.options.hold_check_seconds)
            self.paused_reason = reason
        self.unload_models(reason)
        self.status.report(PAUSED, reason)
        if not self.options.is_once:
            self.stop.sleep(self.options.hold_check_seconds)

    def resume_if_paused(self) -> None:
        if self.paused_reason is not None:
            log.warning("resuming: %s is over", self.paused_reason)
            self.paused_reason = None
            self.last_work_at = self.clock()  # the idle time starts again from here

    def unload_if_idle(self) -> None:
        idle_seconds = self.clock() - self.last_work_at
        if 0 < self.options.idle_unload_seconds <= idle_seconds:
            self.unload_models(f"idle for {idle_seconds / 60:.0f} min")

    def unload_models(self, why: str) -> None:
        for holder in (self.models, self.rankers):
            if holder is not None:
                holder.unload(why)

    def idle_unload_text(self) -> str:
        if self.options.idle_unload_seconds <= 0 or not self.models.can_unload:
            return ""
        return f", unloads after {self.options.idle_unload_seconds / 60:g} min idle"

    def long_poll(self, claim) -> list[Claim]:
        """claim() on a thread of its own, so a stop request needn't wait out the poll.

        The server may be answering with jobs just as the stop comes, so the poll gets a short
        grace to answer; jobs it brings are generated (the first signal finishes the batch in
        hand). A poll still waiting after that is left behind: its process is about to exit."""
        answer: dict = {}
        answered = threading.Event()

        def poll() -> None:
            try:
                answer["claims"] = claim()
            except Exception as error:  # noqa: BLE001 - raised again in the caller's thread
                answer["error"] = error
            finally:
                answered.set()

        threading.Thread(target=poll, name="claim", daemon=True).start()
        while not answered.wait(STOP_CHECK_SECONDS):
            if self.stop.is_requested:
                answered.wait(defaults.CLAIM_ANSWER_GRACE_SECONDS)
                break
        if not answered.is_set():
            return []
        if "error" in answer:
            raise answer["error"]
        return answer["claims"]

    def run_batch(self, claims: Sequence[Claim]) -> None:
        self.status.report(WORKING)
        try:
            self.run_claims(claims)
        finally:
            self.last_work_at = self.clock()

    def run_claims(self, claims: Sequence[Claim]) -> None:
        to_generate = []
        for claim in claims:
            orphan = self.spool.orphan_for(claim, jobs.fingerprint(claim.job))
            if orphan is not None:
                log.info("job %s: posting the images made under an earlier lease", claim.job_id)
            else:
                to_generate.append(claim)
        if to_generate and not self.load_models(to_generate):
            to_generate = []
        self.generate(to_generate)
        self.deliver_pending()

    def load_models(self, claims: Sequence[Claim]) -> bool:
        """Loads the model again if it was unloaded; False (each job failed, out of memory
        retryable) when it cannot be, e.g. while a game holds the GPU's memory."""
        try:
            self.models.get()
            if self.rankers is not None:
                self.rankers.get()
        except Exception as error:  # noqa: BLE001 - the worker lives on to try the next batch
            for claim in claims:
                self.report_failure(claim, error)
            return False
        return True

    # -- generating -------------------------------------------------------------------------
    def generate(self, claims: Sequence[Claim]) -> None:
        """Generates claims as one batch and spools each result; splits the batch on errors."""
        claims = [claim for claim in claims if not self.drop_if_stopped(claim)]
        if not claims:
            return
        started = time.perf_counter()
        requests = [self.generation_request(claim.job) for claim in claims]
        on_codes = self.previews.callback(claims, is_wanted=lambda claim: not self.is_stopped(claim))
        preview_args = {} if on_codes is None else {"on_codes": on_codes}
        try:
            codes = self.pipeline.generate_batch(requests, self.progress_callback(claims),
                                                 **preview_args)
        except (BatchStopped, Abandoned):
            if self.stop.is_forced:
                raise Abandoned() from None
            for claim in claims:
                self.drop_if_stopped(claim)
            return
        except Exception as error:  # noqa: BLE001 - a model error must not take the worker down
            if len(claims) > 1:
                half = len(claims) // 2
                log.warning("batch of %d jobs failed (%s); retrying it in halves",
                            len(claims), failure_text(error))
                self.generate(claims[:half])
                self.generate(claims[half:])
                return
            self.report_failure(claims[0], error)
            return
        image_count = sum(jobs.tile_count(claim.job) for claim in claims)
        for claim, job_codes in zip(claims, codes):
            if self.drop_if_stopped(claim):
                continue
            try:
                images = self.decode(claim, job_codes)
            except BatchStopped:
                self.drop_if_stopped(claim)
                continue
            except Abandoned:
                raise
            except Exception as error:  # noqa: BLE001
                self.report_failure(claim, error)
                continue
            ranker = None if self.rankers is None else self.rankers.get()
            scoring = ranking_meta(ranker, claim.job_id, claim.job["prompt"], images)
            try:
                entry = self.spool_result(claim, images, time.perf_counter() - started,
                                          len(claims), image_count, scoring)
            except OSError as error:  # a full or broken disk: this worker can't keep results
                self.report_failure(claim, error)
                continue
            self.deliver(entry)  # now, not after the batch: the phone shows it sooner

    def generation_request(self, job: dict):
        return self._request_type(job["prompt"], int(job["seed"]), jobs.tile_count(job),
                                  self._params_type(**jobs.sampling_knobs(job)))

    def progress_callback(self, claims: Sequence[Claim]):
        def on_progress(steps_done: int, steps_total: int) -> None:
            share = defaults.TOKEN_PROGRESS_SHARE * steps_done / max(1, steps_total)
            for claim in claims:
                self.heartbeats.set_progress(claim.job_id, share)
            if self.stop.is_forced:
                raise Abandoned()
            if all(self.is_stopped(claim) for claim in claims):
                raise BatchStopped()
        return on_progress

    def decode(self, claim: Claim, job_codes) -> list:
        from PIL import Image

        images = []
        for index, row in enumerate(job_codes):
            pixels = self.pipeline.decode_tokens(row[None])[0]
            images.append(Image.fromarray(pixels, "RGB"))
            share = defaults.TOKEN_PROGRESS_SHARE
            decoded = (index + 1) / len(job_codes)
            # just short of 1.0: the server sets that itself when the images have arrived
            self.heartbeats.set_progress(claim.job_id, share + (1 - share) * decoded * 0.99)
            if self.stop.is_forced:
                raise Abandoned()
            if self.is_stopped(claim):
                raise BatchStopped()
        return images

    def spool_result(self, claim: Claim, images: list, seconds: float, batch_job_count: int,
                     batch_image_count: int, scoring: dict | None = None) -> SpooledResult:
        """Spools a job's images with its meta; `scoring` adds ranking_meta's scores."""
        job = claim.job
        text = jobs.png_metadata(job, self.model.label, self.model.dtype)
        tile_pngs = [self._png_bytes(image, text) for image in images]
        grid_png = self._png_bytes(self._make_grid(images), text)
        meta = {"worker": self.options.name, "model": self.model.label, "dtype": self.model.dtype,
                "device": self.model.device, "random_weights": self.model.is_random_weights,
                "seconds": round(seconds, 3), "batch_jobs": batch_job_count,
                "batch_images": batch_image_count,
                "images_per_second": round(batch_image_count / max(seconds, 1e-9), 3),
                **(scoring or {})}
        return self.spool.save(claim, jobs.fingerprint(job), grid_png, tile_pngs, meta)

    # -- cancel, lost leases, failures --------------------------------------------------------
    def is_stopped(self, claim: Claim) -> bool:
        return (self.heartbeats.is_lost(claim.job_id)
                or self.heartbeats.is_cancel_requested(claim.job_id))

    def drop_if_stopped(self, claim: Claim) -> bool:
        """True (and the job let go) when it was canceled or its lease lost."""
        if self.heartbeats.is_lost(claim.job_id):
            log.info("job %s dropped: its lease is gone", claim.job_id)
            self.let_go(claim.job_id)
            return True
        if self.heartbeats.is_cancel_requested(claim.job_id):
            log.info("job %s canceled", claim.job_id)
            self.tell_server(claim, lambda client: client.fail(
                claim.job_id, claim.lease, "canceled while generating", False))
            self.let_go(claim.job_id)
            return True
        return False

    def report_failure(self, claim: Claim, error: BaseException) -> None:
        # out of memory or out of disk: another worker (or a smaller batch) may well succeed
        is_retryable = is_out_of_memory(error) or isinstance(error, OSError)
        log.error("job %s failed (%s): %s", claim.job_id,
                  "retryable" if is_retryable else "not retryable", failure_text(error),
                  exc_info=not is_retryable)
        self.tell_server(claim, lambda client: client.fail(
            claim.job_id, claim.lease, failure_text(error), is_retryable))
        self.let_go(claim.job_id)

    def hand_back_leases(self) -> None:
        for claim in list(self.held.values()):
            log.warning("job %s: handing the lease back", claim.job_id)
            try:
                self.client.fail(claim.job_id, claim.lease, "the worker was stopped", True)
            except (ServerUnavailable, LeaseLost, JobGone, Rejected) as error:
                log.warning("job %s: could not hand the lease back: %s", claim.job_id, error)
            self.let_go(claim.job_id)

    def tell_server(self, claim: Claim, call) -> None:
        """Makes one call about a held job, retried while the server is unreachable."""
        try:
            self.persist(lambda: call(self.client))
        except (LeaseLost, JobGone, Rejected) as error:
            log.info("job %s: the server no longer wants this (%s)", claim.job_id, error)
        except ServerUnavailable as error:
            log.warning("job %s: gave up telling the server (%s)", claim.job_id, error)

    def let_go(self, job_id: str) -> None:
        self.held.pop(job_id, None)
        self.heartbeats.release(job_id)

    # -- delivering ---------------------------------------------------------------------------
    def deliver_pending(self) -> None:
        for entry in self.spool.pending():
            self.deliver(entry)

    def deliver(self, entry: SpooledResult) -> None:
        """Posts one spooled result; it leaves the spool only once the server has answered."""
        try:
            answer = self.persist(lambda: self.client.post_result(
                entry.job_id, entry.lease, entry.grid_png(), entry.tile_pngs(), entry.meta))
        except LeaseLost as error:
            log.warning("job %s: lease lost before the upload, keeping its images in case it "
                        "comes back (%s)", entry.job_id, error)
            self.spool.orphan(entry)
        except JobGone:
            log.info("job %s was deleted before its images arrived", entry.job_id)
            self.spool.remove(entry)
        except Rejected as error:
            log.error("job %s: the server refused its result: %s", entry.job_id, error)
            self.spool.remove(entry)
        except ServerUnavailable as error:  # only once stopping: see persist
            log.warning("job %s: the server is unreachable; its result stays in the spool for "
                        "the next start (%s)", entry.job_id, error)
        else:
            self.spool.remove(entry)
            if answer.get("status") == "canceled":  # canceled before its images arrived
                log.info("job %s was canceled; the server dropped its images", entry.job_id)
                return
            meta = entry.meta
            log.info('job %s done: prompt="%s" seed=%s images=%d seconds=%.2f images_per_s=%.2f '
                     "batch_jobs=%s", entry.job_id,
                     jobs.prompt_preview(entry.job["prompt"], defaults.PROMPT_LOG_CHARS),
                     entry.job["seed"], jobs.tile_count(entry.job), meta.get("seconds", 0.0),
                     meta.get("images_per_second", 0.0), meta.get("batch_jobs", 1))
        self.let_go(entry.job_id)

    def persist(self, call):
        """call() until it gets an answer; retries ServerUnavailable with backoff. After a stop
        request it gives up once the stop's retry budget is spent, at once after a second one
        (the spool keeps what was not delivered)."""
        backoff = Backoff()
        while True:
            try:
                return call()
            except ServerUnavailable as error:
                remaining_seconds = self.stop_retry_remaining_seconds()
                if remaining_seconds <= 0:
                    raise
                wait_seconds = min(backoff.next_seconds(), remaining_seconds)
                log.warning("server unavailable, retrying in %.1f s: %s", wait_seconds, error)
                self.stop.sleep(wait_seconds)

    def stop_retry_remaining_seconds(self) -> float:
        """How long a stopping worker may still retry the server: forever while not stopping."""
        if not self.stop.is_requested:
            return float("inf")
        if self.stop.is_forced:
            return 0.0
        if self.stop_retry_deadline is None:
            self.stop_retry_deadline = time.monotonic() + self.options.stop_retry_seconds
        return self.stop_retry_deadline - time.monotonic()
