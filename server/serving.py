"""Running the app under waitress, a production WSGI server with a thread pool (not Flask's dev server).

Binds 127.0.0.1 unless told otherwise, prints the URL it answers on (with the real port when
--port 0 asked for a free one), and closes on Ctrl-C. A SIGTERM or a crash loses nothing:
every job the API acknowledged was committed first (tests/test_http.py kills it with SIGKILL).
"""

import logging
import threading

from waitress import create_server

from . import create_app, long_polls
from .body_gate import gated_channel
from .config import Settings
from .orphans import OrphanSweeper
from .protection import allow_bound_address

log = logging.getLogger(__name__)


def make_server(settings: Settings, *, host: str, port: int, threads: int):
    """The app under waitress, with the orphaned-folder sweep run once now and then periodically,
    and the push sender started (the caller stops it: app.extensions["dalleq"].push.stop())."""
    app = create_app(settings)
    long_polls.install(app, threads)  # long polls never take the threads people's requests need
    allow_bound_address(app, host)
    services = app.extensions["dalleq"]
    OrphanSweeper(services.engine, services.storage, services.queue.previews).start()
    services.push.start()
    listeners = {}  # waitress registers each listening socket here (two for a name like localhost)
    server = create_server(
        app,
        map=listeners,
        host=host,
        port=port,
        threads=threads,
        ident="dalle-queue",
        # The app's own cap: body_gate answers a Content-Length over it (as JSON) before reading;
        # this cuts a chunked body at the same size (waitress refuses from max_request_body_size).
        max_request_body_size=settings.max_upload_mb * 2**20 + 1,
        channel_timeout=60,
    )
    channel_class = gated_channel(settings)
    for listener in list(listeners.values()):
        if hasattr(listener, "channel_class"):  # the map holds waitress's wake-up trigger too
            listener.channel_class = channel_class
    return app, server


def run_until_stopped(server) -> None:
    """Serve until Ctrl-C (SIGINT), then close the listening socket."""
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


class BackgroundServer:
    """The server's loop on a daemon thread, so the main thread is free to stop what depends on
    the server before closing it (`dalleq up` stops its worker first: issue 16, item 15).

    waitress's own Ctrl-C path waits up to 5 s for its threads, and a worker's long poll holds
    one for up to 25 s; the process exit ends them instead (they are daemon threads)."""

    def __init__(self, server):
        self.server = server
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._run, name="server", daemon=True)

    def start(self) -> "BackgroundServer":
        self.thread.start()
        return self

    def wait(self, seconds: float) -> bool:
        """Waits up to `seconds`; True while the server still runs."""
        self.thread.join(seconds)
        return self.thread.is_alive()

    def close(self) -> None:
        """Close the listening socket: no new connections."""
        self.closing.set()
        self.server.close()
        log.info("server closed")

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:
            if not self.closing.is_set():  # its loop may still be polling the closed socket
                raise


def url_host(host: str) -> str:
    """The host as a URL spells it: IPv6 addresses go in brackets."""
    return f"[{host}]" if ":" in host else host


def announce(host: str, port: int) -> None:
    """Print the URL the server answers on (tests and scripts read this line)."""
    print(f"dalle-queue serving on http://{url_host(host)}:{port}/", flush=True)


def run_server(settings: Settings, *, host: str, port: int, threads: int) -> None:
    app, server = make_server(settings, host=host, port=port, threads=threads)
    announce(host, server.effective_port)
    if not settings.worker_token:
        log.warning("DALLEQ_WORKER_TOKEN is not set: workers cannot claim jobs")
    try:
        run_until_stopped(server)
    finally:
        app.extensions["dalleq"].push.stop()
