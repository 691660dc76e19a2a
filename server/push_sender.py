"""Sending Web Push off the request path: one daemon thread and a bounded queue.

A job ending (server/queue.py) only puts a message on the queue; this thread encrypts and posts it
to each stored browser's push service with pywebpush (RFC 8291 aes128gcm, VAPID RFC 8292). So a
slow or dead push service never slows or fails a job. Each post has a short timeout and a few
tries with a growing pause; 404 or 410 means the browser dropped the subscription (RFC 8030,
section 7.3), and it is forgotten. Every outcome is logged with the job id.
"""

import json
import logging
import queue
import threading

import requests
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from . import defaults
from .push_messages import job_message
from .push_subscriptions import PushSubscriptions, Subscription

log = logging.getLogger(__name__)

GONE_STATUSES = {404, 410}  # the push service no longer knows this subscription
URGENCY = "normal"  # RFC 8030 5.3: a finished job is worth waking a phone for, not urgently


class PushSender:
    """Tells every subscribed browser when a job ends; start() and stop() bound its thread."""

    def __init__(
        self,
        subscriptions: PushSubscriptions,
        vapid: Vapid,
        contact: str,
        *,
        base_url: str = "",
        tries: int = defaults.PUSH_TRIES,
        retry_seconds: float = defaults.PUSH_RETRY_SECONDS,
        timeout_seconds: float = defaults.PUSH_TIMEOUT_SECONDS,
        ttl_seconds: int = defaults.PUSH_TTL_SECONDS,
        queue_max: int = defaults.PUSH_QUEUE_MAX,
    ):
        self.subscriptions = subscriptions
        self.vapid = vapid
        self.contact = contact
        self.base_url = base_url
        self.tries = tries
        self.retry_seconds = retry_seconds
        self.timeout_seconds = timeout_seconds
        self.ttl_seconds = ttl_seconds
        self._messages: queue.Queue = queue.Queue(maxsize=queue_max)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def job_ended(self, job: dict) -> None:
        """Queue the notification for a job that just ended (never blocks, never raises)."""
        message = job_message(job, self.base_url)
        if message is None or not self.is_running:
            return
        try:
            self._messages.put_nowait(message)
        except queue.Full:
            log.warning("job %s: push not sent, %d messages already wait",
                        job["id"], self._messages.maxsize)

    def start(self) -> "PushSender":
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="push-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Stop after the post in flight; messages still waiting are dropped (and logged)."""
        self._stopping.set()
        try:
            self._messages.put_nowait(None)  # wakes the thread if it waits for a message
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout_seconds)
        dropped = self._messages.qsize()
        if dropped > 1:
            log.info("push sender stopped; %d message(s) not sent", dropped - 1)
        self._session.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            message = self._messages.get()
            if message is None or self._stopping.is_set():
                return
            try:
                self.send_to_all(message)
            except Exception:  # a database outage must not end the sender
                log.exception("job %s: push failed", message["job_id"])

    def send_to_all(self, message: dict) -> None:
        """Post `message` to every stored subscription, one after another."""
        payload = json.dumps(message, ensure_ascii=False)
        for subscription in self.subscriptions.all():
            self.send(subscription, payload, message["job_id"])

    def send(self, subscription: Subscription, payload: str, job_id: str) -> bool:
        """Post one message, with up to `tries` tries; True when the push service took it."""
        host = subscription.endpoint.split("/")[2]
        pause_seconds = self.retry_seconds
        for attempt in range(1, self.tries + 1):
            try:
                webpush(
                    subscription.info(),
                    data=payload,
                    vapid_private_key=self.vapid,
                    vapid_claims={"sub": self.contact},  # webpush adds aud and exp to its copy
                    timeout=self.timeout_seconds,
                    ttl=self.ttl_seconds,
                    headers={"Urgency": URGENCY},
                    requests_session=self._session,
                )
                log.info("job %s: pushed to %s", job_id, host)
                return True
            except WebPushException as error:
                status = getattr(error.response, "status_code", None)
                if status in GONE_STATUSES:
                    self.subscriptions.remove(subscription.endpoint)
                    log.info("job %s: %s answered %s; subscription dropped", job_id, host, status)
                    return False
                problem = f"answered {status}" if status else str(error)
            except requests.RequestException as error:
                problem = type(error).__name__
            log.warning("job %s: push to %s failed (try %d of %d): %s",
                        job_id, host, attempt, self.tries, problem)
            if attempt < self.tries and self._stopping.wait(pause_seconds):
                return False  # stopping: no more tries
            pause_seconds *= 2
        return False
